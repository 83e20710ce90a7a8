/*
 * dmabuf issuer module ABI: fence issuers ("drivers") built as shared objects
 * outside the project and loaded at run time with Issuer::load().
 *
 * Pure C (C99 or later, also valid C++). A module includes only this header and
 * links against nothing of dmabuf: every core function it needs arrives in a
 * `struct dmabuf_core_api` table passed to its entry point.
 *
 * A module exports two symbols, both defined by DMABUF_ISSUER_MODULE(init):
 *   const uint32_t dmabuf_issuer_abi;      the ABI version it was built for
 *   int dmabuf_issuer_init(api, issuer, module);
 * and fills `struct dmabuf_issuer_module` with its fence ops, its issuer hooks
 * and an opaque instance pointer.
 *
 * Lifetime rules (Linux 7.1, "Independence for dma_fences!"):
 *  - At signal time a fence whose ops have neither `release` nor `wait` is
 *    detached: the core never calls into the module for it again, and its names
 *    read "detached-driver" / "signaled-timeline".
 *  - A fence whose ops have `release` or `wait` never detaches: it pins the
 *    module, and unload waits until the last such fence is gone.
 *  - Unload: `signal_all` (signal every fence you still own), the core waits for
 *    pinned fences, one RCU grace period, then `shutdown`, then dlclose. So
 *    anything reachable through the ops (name strings, timeline state) must stay
 *    valid until `shutdown`.
 * See docs/issuers.md.
 */
#ifndef DMABUF_ISSUER_H
#define DMABUF_ISSUER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Versioning: a module built for MAJOR.MINOR loads into a core of the same MAJOR
 * and an equal or newer MINOR. Anything else fails with -EPROTO. Minor versions
 * only append fields at the end of the structs below.
 */
#define DMABUF_ISSUER_ABI_MAJOR 1u
#define DMABUF_ISSUER_ABI_MINOR 0u
#define DMABUF_ISSUER_ABI_VERSION ((DMABUF_ISSUER_ABI_MAJOR << 16) | DMABUF_ISSUER_ABI_MINOR)

#define DMABUF_ISSUER_ABI_SYMBOL "dmabuf_issuer_abi"
#define DMABUF_ISSUER_ENTRY_SYMBOL "dmabuf_issuer_init"

/* Opaque: a fence, a legacy external fence lock, and this module instance. */
typedef struct dmabuf_fence dmabuf_fence;
typedef struct dmabuf_fence_lock dmabuf_fence_lock;
typedef struct dmabuf_issuer dmabuf_issuer;

/* Infinite wait timeout (MAX_SCHEDULE_TIMEOUT). */
#define DMABUF_TIMEOUT_INFINITE INT64_MAX

/*
 * The fence operations (struct dma_fence_ops). Both name callbacks are
 * mandatory; the rest may be NULL. The returned strings must stay valid until
 * `shutdown` (at least one RCU grace period after the fence is signalled).
 */
struct dmabuf_fence_ops {
	const char *(*get_driver_name)(dmabuf_fence *f);
	const char *(*get_timeline_name)(dmabuf_fence *f);
	/*
	 * At most once, on the first add_callback / wait / enable_sw_signaling,
	 * with the fence lock held inside an RCU read section: do not take the
	 * fence lock, do not block. Return false if the fence has already passed
	 * (the core then signals it; set an error first if needed). Hold your own
	 * reference if you will signal it later from elsewhere.
	 */
	bool (*enable_signaling)(dmabuf_fence *f);
	/* Polling fast path; once true it must stay true. May set an error. */
	bool (*signaled)(dmabuf_fence *f);
	/*
	 * Deprecated custom wait (timeout in ns): remaining time (>= 1) if
	 * signalled, 0 on timeout, negative errno. Implementing it prevents
	 * detaching: the fence pins the module. `api->fence_default_wait` is the
	 * default.
	 */
	int64_t (*wait)(dmabuf_fence *f, bool intr, int64_t timeout_ns);
	/*
	 * Last reference dropped: free what the fence's private area refers to.
	 * The core frees the fence memory itself (after a grace period) when this
	 * returns. Runs inside an RCU read section, on any thread. Implementing it
	 * prevents detaching: the fence pins the module.
	 */
	void (*release)(dmabuf_fence *f);
	/* Deadline hint (CLOCK_MONOTONIC ns); any thread, possibly concurrently. */
	void (*set_deadline)(dmabuf_fence *f, int64_t deadline_ns);
};

/* What the caller of create_fence asked for. Hints: an issuer may ignore them. */
#define DMABUF_FENCE_ARG_CONTEXT (1u << 0) /* `context` is set */
#define DMABUF_FENCE_ARG_SEQNO (1u << 1)   /* `seqno` is set */
#define DMABUF_FENCE_ARG_SEQNO64 (1u << 2) /* 64-bit seqno ordering */

struct dmabuf_fence_args {
	uint32_t size; /* sizeof(struct dmabuf_fence_args) as the core knows it */
	uint32_t flags;
	uint64_t context;
	uint64_t seqno;
};

/* Instance-level hooks. `priv` is dmabuf_issuer_module.priv. */
struct dmabuf_issuer_ops {
	/*
	 * Mandatory. Create one initialised fence of this issuer and hand the
	 * caller one reference in *out. 0 or a negative errno.
	 */
	int (*create_fence)(void *priv, const struct dmabuf_fence_args *args,
			    dmabuf_fence **out);
	/*
	 * Unload, step 1: signal every fence you still own (with an error such as
	 * -ECANCELED if the work did not happen) and stop creating fences. When
	 * it returns, every fence this instance ever initialised must be
	 * signalled, including ones a worker thread had in hand.
	 */
	void (*signal_all)(void *priv);
	/*
	 * Unload, last step, one RCU grace period after signal_all: join threads,
	 * free `priv` and everything the ops referred to. Must not signal fences.
	 */
	void (*shutdown)(void *priv);
	/* Optional named integer parameters: 0, -ENOENT (unknown), -EINVAL, ... */
	int (*set_param)(void *priv, const char *name, int64_t value);
	int (*get_param)(void *priv, const char *name, int64_t *value);
};

/* Module flags. */
/*
 * Pre-7.1 behaviour, for reproducing the historical crash only: fences keep
 * their ops after signalling (never detach) and unload does not wait for them,
 * so a later put or ops call runs into unmapped module memory.
 */
#define DMABUF_ISSUER_F_KEEP_OPS (1u << 0)

/* Filled by the module's entry point (the core zeroes it first). */
struct dmabuf_issuer_module {
	uint32_t size; /* set by the core: sizeof as the core knows it */
	uint32_t flags; /* DMABUF_ISSUER_F_* */
	const char *name; /* short module name for messages; may be NULL */
	const struct dmabuf_fence_ops *fence_ops;
	const struct dmabuf_issuer_ops *issuer_ops;
	void *priv;
	const char *const *param_names; /* NULL-terminated list, or NULL */
};

/*
 * The core's functions, passed to the entry point. Valid until `shutdown`
 * returns. Names follow the kernel's dma_fence_* functions.
 */
struct dmabuf_core_api {
	uint32_t abi_version; /* the core's DMABUF_ISSUER_ABI_VERSION */
	uint32_t size;        /* sizeof(struct dmabuf_core_api) in the core */

	/*
	 * Fence memory: the core allocates it, zeroed, with `priv_size` bytes of
	 * module data (16-byte aligned, see fence_priv). NULL on failure or after
	 * unload started. Pass it to fence_init/fence_init64 (which hand you the
	 * first reference), or give it back uninitialised with fence_discard.
	 */
	dmabuf_fence *(*fence_alloc)(dmabuf_issuer *issuer, size_t priv_size);
	void (*fence_discard)(dmabuf_fence *f);
	/*
	 * dma_fence_init / dma_fence_init64 with this issuer's ops. `lock` NULL
	 * selects the fence's inline lock (7.1); a non-NULL external lock is
	 * legacy (see lock_create).
	 */
	void (*fence_init)(dmabuf_fence *f, dmabuf_fence_lock *lock, uint64_t context,
			   uint64_t seqno);
	void (*fence_init64)(dmabuf_fence *f, dmabuf_fence_lock *lock, uint64_t context,
			     uint64_t seqno);
	void *(*fence_priv)(dmabuf_fence *f);
	uint64_t (*fence_context)(const dmabuf_fence *f);
	uint64_t (*fence_seqno)(const dmabuf_fence *f);

	dmabuf_fence *(*fence_get)(dmabuf_fence *f); /* NULL-tolerant */
	void (*fence_put)(dmabuf_fence *f);          /* NULL-tolerant */

	void (*fence_signal)(dmabuf_fence *f);
	void (*fence_signal_timestamp)(dmabuf_fence *f, int64_t timestamp_ns);
	/* true if it was already signalled (no-op), false if this call did it */
	bool (*fence_check_and_signal)(dmabuf_fence *f);
	/* Before signalling only; -4095 <= error < 0. */
	void (*fence_set_error)(dmabuf_fence *f, int error);
	bool (*fence_is_signaled)(dmabuf_fence *f);  /* may poll `signaled` */
	bool (*fence_test_signaled_flag)(const dmabuf_fence *f); /* never polls */
	int (*fence_get_status)(dmabuf_fence *f); /* 0 pending, 1 ok, <0 error */
	int64_t (*fence_default_wait)(dmabuf_fence *f, bool intr, int64_t timeout_ns);

	/* The fence's own lock, and the _locked signal variants under it. */
	void (*fence_lock)(dmabuf_fence *f);
	void (*fence_unlock)(dmabuf_fence *f);
	void (*fence_signal_locked)(dmabuf_fence *f);

	/* dma_fence_context_alloc: `num` consecutive contexts, never 0. */
	uint64_t (*context_alloc)(unsigned num);

	/*
	 * Legacy external lock shared by fences. The core never frees its memory
	 * (fences referencing it may outlive the module); lock_retire only marks
	 * it unused. New modules should pass NULL to fence_init instead.
	 */
	dmabuf_fence_lock *(*lock_create)(void);
	void (*lock_retire)(dmabuf_fence_lock *lock);

	/* RCU: wait for a grace period (never inside a read section). */
	void (*synchronize_rcu)(void);
	int64_t (*monotonic_ns)(void);
	/* The core's WARN(): one line to the warning sink. */
	void (*warn)(const char *message);
};

typedef int dmabuf_issuer_init_fn(const struct dmabuf_core_api *api, dmabuf_issuer *issuer,
				  struct dmabuf_issuer_module *module);

#ifdef __cplusplus
} /* extern "C" */
#define DMABUF_ISSUER_EXTERN_C extern "C"
#else
#define DMABUF_ISSUER_EXTERN_C
#endif

#define DMABUF_ISSUER_EXPORT DMABUF_ISSUER_EXTERN_C __attribute__((visibility("default")))

/*
 * Defines the two exported symbols; `init_fn` has the dmabuf_issuer_init_fn
 * signature and returns 0 or a negative errno. Must not create fences.
 */
#define DMABUF_ISSUER_MODULE(init_fn)                                                \
	DMABUF_ISSUER_EXPORT const uint32_t dmabuf_issuer_abi = DMABUF_ISSUER_ABI_VERSION; \
	DMABUF_ISSUER_EXPORT int dmabuf_issuer_init(const struct dmabuf_core_api *api,      \
						    dmabuf_issuer *issuer,                  \
						    struct dmabuf_issuer_module *module)    \
	{                                                                               \
		return init_fn(api, issuer, module);                                    \
	}

#endif /* DMABUF_ISSUER_H */
