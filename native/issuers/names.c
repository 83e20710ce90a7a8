/*
 * Example issuer 1: names only. Its fence ops have just the two name callbacks,
 * so every fence detaches at signal time and nothing of this module is reachable
 * from it afterwards. The caller (JS, a test) signals the fences; the module
 * keeps a reference to each until it sees it signalled, and signals the rest at
 * unload with -ECANCELED.
 *
 * The timeline name lives in the instance (heap), not in the module's rodata:
 * that is fine because shutdown, which frees it, runs one grace period after
 * every fence was signalled.
 */
#include <pthread.h>
#include <stdint.h>

#include "example_util.h"

struct names_issuer {
	const struct dmabuf_core_api *api;
	dmabuf_issuer *issuer;
	uint64_t context;
	uint64_t next_seqno;
	uint64_t created;
	pthread_mutex_t mu;
	struct fence_set owned;
	char timeline[48];
};

/* Per-fence private area: the instance. */
struct names_fence {
	struct names_issuer *ni;
};

/*
 * The core's table, for callbacks that only get a fence. Every instance receives
 * the same table; atomics because two instances may be initialised concurrently.
 */
static const struct dmabuf_core_api *g_api;
#define API() __atomic_load_n(&g_api, __ATOMIC_RELAXED)

static const char *names_driver_name(dmabuf_fence *f)
{
	(void)f;
	return "example-names";
}

static const char *names_timeline_name(dmabuf_fence *f)
{
	struct names_fence *p = (struct names_fence *)API()->fence_priv(f);
	return p->ni->timeline;
}

static const struct dmabuf_fence_ops names_fence_ops = {
	.get_driver_name = names_driver_name,
	.get_timeline_name = names_timeline_name,
};

static int names_create_fence(void *priv, const struct dmabuf_fence_args *args,
			      dmabuf_fence **out)
{
	struct names_issuer *ni = (struct names_issuer *)priv;
	const struct dmabuf_core_api *api = ni->api;
	dmabuf_fence *f = api->fence_alloc(ni->issuer, sizeof(struct names_fence));
	if (!f)
		return -ENOMEM;
	((struct names_fence *)api->fence_priv(f))->ni = ni;

	pthread_mutex_lock(&ni->mu);
	uint64_t seqno = (args->flags & DMABUF_FENCE_ARG_SEQNO) ? args->seqno : ++ni->next_seqno;
	if (args_seqno64(args))
		api->fence_init64(f, NULL, args_context(args, ni->context), seqno);
	else
		api->fence_init(f, NULL, args_context(args, ni->context), seqno);
	int rc = fence_set_add(api, &ni->owned, api->fence_get(f));
	if (rc == 0)
		ni->created++;
	pthread_mutex_unlock(&ni->mu);
	if (rc) {
		api->fence_put(f); /* the set's reference */
		signal_with_error(api, f, rc);
		api->fence_put(f);
		return rc;
	}
	*out = f;
	return 0;
}

static void names_signal_all(void *priv)
{
	struct names_issuer *ni = (struct names_issuer *)priv;
	pthread_mutex_lock(&ni->mu);
	struct fence_set owned = fence_set_take(&ni->owned);
	pthread_mutex_unlock(&ni->mu);
	fence_set_signal_all(ni->api, &owned, -ECANCELED);
}

static void names_shutdown(void *priv)
{
	struct names_issuer *ni = (struct names_issuer *)priv;
	fence_set_signal_all(ni->api, &ni->owned, -ECANCELED); /* empty after signal_all */
	pthread_mutex_destroy(&ni->mu);
	free(ni);
}

static int names_get_param(void *priv, const char *name, int64_t *value)
{
	struct names_issuer *ni = (struct names_issuer *)priv;
	int rc = 0;
	pthread_mutex_lock(&ni->mu);
	if (!strcmp(name, "owned"))
		*value = (int64_t)ni->owned.n;
	else if (!strcmp(name, "created"))
		*value = (int64_t)ni->created;
	else if (!strcmp(name, "context"))
		*value = (int64_t)ni->context;
	else
		rc = -ENOENT;
	pthread_mutex_unlock(&ni->mu);
	return rc;
}

static const struct dmabuf_issuer_ops names_issuer_ops = {
	.create_fence = names_create_fence,
	.signal_all = names_signal_all,
	.shutdown = names_shutdown,
	.get_param = names_get_param,
};

static const char *const names_params[] = {"owned", "created", "context", NULL};

static int names_init(const struct dmabuf_core_api *api, dmabuf_issuer *issuer,
		      struct dmabuf_issuer_module *m)
{
	struct names_issuer *ni = (struct names_issuer *)calloc(1, sizeof(*ni));
	if (!ni)
		return -ENOMEM;
	__atomic_store_n(&g_api, api, __ATOMIC_RELAXED);
	ni->api = api;
	ni->issuer = issuer;
	ni->context = api->context_alloc(1);
	pthread_mutex_init(&ni->mu, NULL);
	snprintf(ni->timeline, sizeof(ni->timeline), "names-%llu",
		 (unsigned long long)ni->context);
	m->name = "example-names";
	m->fence_ops = &names_fence_ops;
	m->issuer_ops = &names_issuer_ops;
	m->priv = ni;
	m->param_names = names_params;
	return 0;
}

DMABUF_ISSUER_MODULE(names_init)
