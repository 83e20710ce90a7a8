/*
 * Example issuer 3: a polled timeline, the classic hardware pattern. A counter
 * (the "hardware seqno", advanced by the test through a parameter) says which
 * fences have passed. Completion is only *pushed* (signalled) for fences whose
 * signalling was enabled (someone added a callback or waits); the others are
 * observed by polling through `signaled` (fence_is_signaled) -- until then their
 * SIGNALED flag stays clear, as in the kernel.
 *
 * Ops: names, enable_signaling, signaled, set_deadline (no release/wait: the
 * fences still detach at signal time).
 *
 * Parameters: advance (set: counter += n), counter (get; set: move forward to),
 * owned, enable_calls, signaled_calls, deadline_ns (earliest hint, 0 = none).
 */
#include <pthread.h>
#include <stdint.h>

#include "example_util.h"

struct timeline {
	const struct dmabuf_core_api *api;
	dmabuf_issuer *issuer;
	uint64_t context;
	uint64_t counter; /* atomic: the hardware seqno */
	uint64_t enable_calls, signaled_calls; /* atomic */
	int64_t deadline_ns;                   /* atomic, earliest hint */
	pthread_mutex_t mu;
	uint64_t next_seqno;
	struct fence_set owned; /* unsignalled fences, one reference each */
	char timeline[48];
};

struct polled_fence {
	struct timeline *tl;
	int enabled; /* atomic */
};

static const struct dmabuf_core_api *g_api;
#define API() __atomic_load_n(&g_api, __ATOMIC_RELAXED)

static struct polled_fence *pf(dmabuf_fence *f)
{
	return (struct polled_fence *)API()->fence_priv(f);
}

static int passed(struct timeline *tl, dmabuf_fence *f)
{
	return __atomic_load_n(&tl->counter, __ATOMIC_SEQ_CST) >= tl->api->fence_seqno(f);
}

static const char *polled_driver_name(dmabuf_fence *f)
{
	(void)f;
	return "example-polled";
}

static const char *polled_timeline_name(dmabuf_fence *f)
{
	return pf(f)->tl->timeline;
}

/* Fence lock held, inside RCU: no locks of ours, no blocking. */
static bool polled_enable_signaling(dmabuf_fence *f)
{
	struct polled_fence *p = pf(f);
	__atomic_fetch_add(&p->tl->enable_calls, 1, __ATOMIC_RELAXED);
	/*
	 * Publish "enabled" before reading the counter; advance() writes the
	 * counter before reading "enabled". One of us sees the other.
	 */
	__atomic_store_n(&p->enabled, 1, __ATOMIC_SEQ_CST);
	return !passed(p->tl, f); /* false: already passed, the core signals now */
}

static bool polled_signaled(dmabuf_fence *f)
{
	struct polled_fence *p = pf(f);
	__atomic_fetch_add(&p->tl->signaled_calls, 1, __ATOMIC_RELAXED);
	return passed(p->tl, f);
}

static void polled_set_deadline(dmabuf_fence *f, int64_t deadline_ns)
{
	struct timeline *tl = pf(f)->tl;
	int64_t cur = __atomic_load_n(&tl->deadline_ns, __ATOMIC_RELAXED);
	while ((cur == 0 || deadline_ns < cur) &&
	       !__atomic_compare_exchange_n(&tl->deadline_ns, &cur, deadline_ns, true,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static const struct dmabuf_fence_ops polled_fence_ops = {
	.get_driver_name = polled_driver_name,
	.get_timeline_name = polled_timeline_name,
	.enable_signaling = polled_enable_signaling,
	.signaled = polled_signaled,
	.set_deadline = polled_set_deadline,
};

static int polled_create_fence(void *priv, const struct dmabuf_fence_args *args,
			       dmabuf_fence **out)
{
	struct timeline *tl = (struct timeline *)priv;
	const struct dmabuf_core_api *api = tl->api;
	dmabuf_fence *f = api->fence_alloc(tl->issuer, sizeof(struct polled_fence));
	if (!f)
		return -ENOMEM;
	pf(f)->tl = tl;

	pthread_mutex_lock(&tl->mu);
	uint64_t seqno = (args->flags & DMABUF_FENCE_ARG_SEQNO) ? args->seqno : ++tl->next_seqno;
	if (seqno > tl->next_seqno)
		tl->next_seqno = seqno;
	/* The timeline's own context: `passed` compares with its counter. */
	if (args_seqno64(args))
		api->fence_init64(f, NULL, tl->context, seqno);
	else
		api->fence_init(f, NULL, tl->context, seqno);
	int rc = fence_set_add(api, &tl->owned, api->fence_get(f));
	pthread_mutex_unlock(&tl->mu);
	if (rc) {
		api->fence_put(f);
		signal_with_error(api, f, rc);
		api->fence_put(f);
		return rc;
	}
	*out = f;
	return 0;
}

/* Moves the counter forward and signals the passed fences that were enabled. */
static void polled_advance_to(struct timeline *tl, uint64_t value)
{
	const struct dmabuf_core_api *api = tl->api;
	struct fence_set fire = {0};
	pthread_mutex_lock(&tl->mu);
	uint64_t cur = __atomic_load_n(&tl->counter, __ATOMIC_RELAXED);
	if (value > cur)
		__atomic_store_n(&tl->counter, value, __ATOMIC_SEQ_CST);
	size_t keep = 0;
	for (size_t i = 0; i < tl->owned.n; i++) {
		dmabuf_fence *f = tl->owned.v[i];
		struct polled_fence *p = pf(f);
		if (api->fence_test_signaled_flag(f)) {
			api->fence_put(f);
		} else if (passed(tl, f) && __atomic_load_n(&p->enabled, __ATOMIC_SEQ_CST)) {
			if (fence_set_add(api, &fire, f))
				tl->owned.v[keep++] = f; /* no memory: leave it to polling */
		} else {
			tl->owned.v[keep++] = f;
		}
	}
	tl->owned.n = keep;
	pthread_mutex_unlock(&tl->mu);
	/* The "interrupt": signal outside our lock (the fence lock nests outside it). */
	for (size_t i = 0; i < fire.n; i++) {
		api->fence_signal(fire.v[i]);
		api->fence_put(fire.v[i]);
	}
	free(fire.v);
}

static void polled_signal_all(void *priv)
{
	struct timeline *tl = (struct timeline *)priv;
	pthread_mutex_lock(&tl->mu);
	struct fence_set owned = fence_set_take(&tl->owned);
	pthread_mutex_unlock(&tl->mu);
	for (size_t i = 0; i < owned.n; i++) {
		dmabuf_fence *f = owned.v[i];
		/* Passed work completed fine; the rest is cancelled. */
		signal_with_error(tl->api, f, passed(tl, f) ? 0 : -ECANCELED);
		tl->api->fence_put(f);
	}
	free(owned.v);
}

static void polled_shutdown(void *priv)
{
	struct timeline *tl = (struct timeline *)priv;
	fence_set_signal_all(tl->api, &tl->owned, -ECANCELED); /* empty after signal_all */
	pthread_mutex_destroy(&tl->mu);
	free(tl);
}

static int polled_set_param(void *priv, const char *name, int64_t value)
{
	struct timeline *tl = (struct timeline *)priv;
	uint64_t cur = __atomic_load_n(&tl->counter, __ATOMIC_RELAXED);
	if (!strcmp(name, "advance")) {
		if (value < 0)
			return -EINVAL;
		polled_advance_to(tl, cur + (uint64_t)value);
		return 0;
	}
	if (!strcmp(name, "counter")) {
		if (value < 0 || (uint64_t)value < cur)
			return -EINVAL; /* hardware seqnos only move forward */
		polled_advance_to(tl, (uint64_t)value);
		return 0;
	}
	return -ENOENT;
}

static int polled_get_param(void *priv, const char *name, int64_t *value)
{
	struct timeline *tl = (struct timeline *)priv;
	if (!strcmp(name, "counter"))
		*value = (int64_t)__atomic_load_n(&tl->counter, __ATOMIC_RELAXED);
	else if (!strcmp(name, "enable_calls"))
		*value = (int64_t)__atomic_load_n(&tl->enable_calls, __ATOMIC_RELAXED);
	else if (!strcmp(name, "signaled_calls"))
		*value = (int64_t)__atomic_load_n(&tl->signaled_calls, __ATOMIC_RELAXED);
	else if (!strcmp(name, "deadline_ns"))
		*value = __atomic_load_n(&tl->deadline_ns, __ATOMIC_RELAXED);
	else if (!strcmp(name, "context"))
		*value = (int64_t)tl->context;
	else if (!strcmp(name, "owned")) {
		pthread_mutex_lock(&tl->mu);
		*value = (int64_t)tl->owned.n;
		pthread_mutex_unlock(&tl->mu);
	} else
		return -ENOENT;
	return 0;
}

static const struct dmabuf_issuer_ops polled_issuer_ops = {
	.create_fence = polled_create_fence,
	.signal_all = polled_signal_all,
	.shutdown = polled_shutdown,
	.set_param = polled_set_param,
	.get_param = polled_get_param,
};

static const char *const polled_params[] = {"advance",        "counter",     "owned",
					    "enable_calls",   "signaled_calls", "deadline_ns",
					    "context",        NULL};

static int polled_init(const struct dmabuf_core_api *api, dmabuf_issuer *issuer,
		       struct dmabuf_issuer_module *m)
{
	struct timeline *tl = (struct timeline *)calloc(1, sizeof(*tl));
	if (!tl)
		return -ENOMEM;
	__atomic_store_n(&g_api, api, __ATOMIC_RELAXED);
	tl->api = api;
	tl->issuer = issuer;
	tl->context = api->context_alloc(1);
	pthread_mutex_init(&tl->mu, NULL);
	snprintf(tl->timeline, sizeof(tl->timeline), "polled-%llu",
		 (unsigned long long)tl->context);
	m->name = "example-polled";
	m->fence_ops = &polled_fence_ops;
	m->issuer_ops = &polled_issuer_ops;
	m->priv = tl;
	m->param_names = polled_params;
	return 0;
}

DMABUF_ISSUER_MODULE(polled_init)
