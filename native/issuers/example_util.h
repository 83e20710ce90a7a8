/*
 * Helpers shared by the example issuer modules (header-only, C). Not part of
 * the ABI: a module may copy them.
 *
 * fence_set: the fences an issuer still owns, one reference each. Fences that
 * someone else signalled are dropped lazily (when the set has doubled since the
 * last sweep), so tracking costs O(1) amortised per fence; whatever is still
 * unsignalled at unload is signalled by signal_all.
 */
#ifndef DMABUF_EXAMPLE_UTIL_H
#define DMABUF_EXAMPLE_UTIL_H

#include <dmabuf/issuer.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fence_set {
	dmabuf_fence **v;
	size_t n, cap, sweep_at;
};

/* Drops the references of fences that are already signalled. */
static inline void fence_set_sweep(const struct dmabuf_core_api *api, struct fence_set *s)
{
	size_t keep = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (api->fence_test_signaled_flag(s->v[i]))
			api->fence_put(s->v[i]);
		else
			s->v[keep++] = s->v[i];
	}
	s->n = keep;
	s->sweep_at = keep * 2 > 64 ? keep * 2 : 64;
}

/* Takes over one reference to `f`. -ENOMEM leaves the reference with the caller. */
static inline int fence_set_add(const struct dmabuf_core_api *api, struct fence_set *s,
				dmabuf_fence *f)
{
	if (s->n >= s->sweep_at)
		fence_set_sweep(api, s);
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		dmabuf_fence **v = (dmabuf_fence **)realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = f;
	return 0;
}

/* Moves the contents out (the caller signals and puts them outside its lock). */
static inline struct fence_set fence_set_take(struct fence_set *s)
{
	struct fence_set t = *s;
	memset(s, 0, sizeof(*s));
	return t;
}

/*
 * Signals `f` with `error` unless someone else already did, under the fence
 * lock (so the error is never set on a signalled fence).
 */
static inline void signal_with_error(const struct dmabuf_core_api *api, dmabuf_fence *f,
				     int error)
{
	api->fence_lock(f);
	if (!api->fence_test_signaled_flag(f)) {
		if (error)
			api->fence_set_error(f, error);
		api->fence_signal_locked(f);
	}
	api->fence_unlock(f);
}

/* signal_all for a fence_set: signal with `error` and drop every reference. */
static inline void fence_set_signal_all(const struct dmabuf_core_api *api, struct fence_set *s,
					int error)
{
	for (size_t i = 0; i < s->n; i++) {
		signal_with_error(api, s->v[i], error);
		api->fence_put(s->v[i]);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* The context and seqno a module uses for a new fence, honouring the hints. */
static inline uint64_t args_context(const struct dmabuf_fence_args *a, uint64_t dflt)
{
	return (a && (a->flags & DMABUF_FENCE_ARG_CONTEXT)) ? a->context : dflt;
}
static inline int args_seqno64(const struct dmabuf_fence_args *a)
{
	return a && (a->flags & DMABUF_FENCE_ARG_SEQNO64);
}

#endif /* DMABUF_EXAMPLE_UTIL_H */
