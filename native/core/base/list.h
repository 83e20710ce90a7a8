// Intrusive doubly linked list, the shape of the kernel's list_head: the fence
// callback list and waiter lists link nodes that live inside their owners.
#pragma once

namespace dmabuf {

struct ListHead {
  ListHead* next;
  ListHead* prev;
};

inline void list_init(ListHead* h) { h->next = h; h->prev = h; }
inline bool list_empty(const ListHead* h) { return h->next == h; }

inline void list_insert_between(ListHead* n, ListHead* prev, ListHead* next) {
  next->prev = n;
  n->next = next;
  n->prev = prev;
  prev->next = n;
}
inline void list_add(ListHead* n, ListHead* h) { list_insert_between(n, h, h->next); }
inline void list_add_tail(ListHead* n, ListHead* h) { list_insert_between(n, h->prev, h); }

inline void list_del_init(ListHead* n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  list_init(n);
}

// Moves every node of `from` onto the empty head `to`; `from` is left empty.
inline void list_splice_init(ListHead* from, ListHead* to) {
  if (list_empty(from)) { list_init(to); return; }
  to->next = from->next;
  to->prev = from->prev;
  to->next->prev = to;
  to->prev->next = to;
  list_init(from);
}

template <typename T, typename M>
inline T* container_of(M* ptr, M T::*member) {
  const auto offset = reinterpret_cast<char*>(&(static_cast<T*>(nullptr)->*member)) -
                      static_cast<char*>(nullptr);
  return reinterpret_cast<T*>(reinterpret_cast<char*>(ptr) - offset);
}

}  // namespace dmabuf
