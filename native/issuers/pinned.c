/*
 * Example issuer 4: fences with a `release` op. Each fence owns a heap "job"
 * that release frees. Because the core must call release on the last put, even
 * after the fence was signalled, such fences never detach: every one of them
 * pins this module, and unload waits until the last one is gone (or times out
 * with -EBUSY).
 *
 * The caller signals the fences; the module keeps a reference to each until it
 * sees it signalled and signals the rest at unload with -ECANCELED.
 *
 * Parameters: jobs (get: live jobs), released (get), owned (get).
 */
#include <pthread.h>
#include <stdint.h>

#include "example_util.h"

struct pinned_issuer {
	const struct dmabuf_core_api *api;
	dmabuf_issuer *issuer;
	uint64_t context;
	pthread_mutex_t mu;
	uint64_t next_seqno;
	struct fence_set owned;
	int64_t jobs, released; /* atomic */
};

struct job {
	uint64_t seqno;
	char payload[48];
};

struct pinned_fence {
	struct pinned_issuer *pi;
	struct job *job;
};

static const struct dmabuf_core_api *g_api;
#define API() __atomic_load_n(&g_api, __ATOMIC_RELAXED)

static struct pinned_fence *pf(dmabuf_fence *f)
{
	return (struct pinned_fence *)API()->fence_priv(f);
}

static const char *pinned_driver_name(dmabuf_fence *f)
{
	(void)f;
	return "example-pinned";
}

static const char *pinned_timeline_name(dmabuf_fence *f)
{
	(void)f;
	return "pinned-timeline";
}

/* Last put: inside an RCU read section, any thread. The core frees the fence. */
static void pinned_release(dmabuf_fence *f)
{
	struct pinned_fence *p = pf(f);
	free(p->job);
	__atomic_fetch_sub(&p->pi->jobs, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&p->pi->released, 1, __ATOMIC_RELAXED);
}

static const struct dmabuf_fence_ops pinned_fence_ops = {
	.get_driver_name = pinned_driver_name,
	.get_timeline_name = pinned_timeline_name,
	.release = pinned_release,
};

static int pinned_create_fence(void *priv, const struct dmabuf_fence_args *args,
			       dmabuf_fence **out)
{
	struct pinned_issuer *pi = (struct pinned_issuer *)priv;
	const struct dmabuf_core_api *api = pi->api;
	struct job *job = (struct job *)calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	dmabuf_fence *f = api->fence_alloc(pi->issuer, sizeof(struct pinned_fence));
	if (!f) {
		free(job);
		return -ENOMEM;
	}
	pf(f)->pi = pi;
	pf(f)->job = job;
	__atomic_fetch_add(&pi->jobs, 1, __ATOMIC_RELAXED);

	pthread_mutex_lock(&pi->mu);
	uint64_t seqno = (args->flags & DMABUF_FENCE_ARG_SEQNO) ? args->seqno : ++pi->next_seqno;
	job->seqno = seqno;
	snprintf(job->payload, sizeof(job->payload), "job %llu", (unsigned long long)seqno);
	if (args_seqno64(args))
		api->fence_init64(f, NULL, args_context(args, pi->context), seqno);
	else
		api->fence_init(f, NULL, args_context(args, pi->context), seqno);
	int rc = fence_set_add(api, &pi->owned, api->fence_get(f));
	pthread_mutex_unlock(&pi->mu);
	if (rc) {
		api->fence_put(f);
		signal_with_error(api, f, rc);
		api->fence_put(f); /* release frees the job */
		return rc;
	}
	*out = f;
	return 0;
}

static void pinned_signal_all(void *priv)
{
	struct pinned_issuer *pi = (struct pinned_issuer *)priv;
	pthread_mutex_lock(&pi->mu);
	struct fence_set owned = fence_set_take(&pi->owned);
	pthread_mutex_unlock(&pi->mu);
	fence_set_signal_all(pi->api, &owned, -ECANCELED);
}

static void pinned_shutdown(void *priv)
{
	struct pinned_issuer *pi = (struct pinned_issuer *)priv;
	fence_set_signal_all(pi->api, &pi->owned, -ECANCELED);
	pthread_mutex_destroy(&pi->mu);
	free(pi);
}

static int pinned_get_param(void *priv, const char *name, int64_t *value)
{
	struct pinned_issuer *pi = (struct pinned_issuer *)priv;
	if (!strcmp(name, "jobs"))
		*value = __atomic_load_n(&pi->jobs, __ATOMIC_RELAXED);
	else if (!strcmp(name, "released"))
		*value = __atomic_load_n(&pi->released, __ATOMIC_RELAXED);
	else if (!strcmp(name, "owned")) {
		pthread_mutex_lock(&pi->mu);
		*value = (int64_t)pi->owned.n;
		pthread_mutex_unlock(&pi->mu);
	} else
		return -ENOENT;
	return 0;
}

static const struct dmabuf_issuer_ops pinned_issuer_ops = {
	.create_fence = pinned_create_fence,
	.signal_all = pinned_signal_all,
	.shutdown = pinned_shutdown,
	.get_param = pinned_get_param,
};

static const char *const pinned_params[] = {"jobs", "released", "owned", NULL};

static int pinned_init(const struct dmabuf_core_api *api, dmabuf_issuer *issuer,
		       struct dmabuf_issuer_module *m)
{
	struct pinned_issuer *pi = (struct pinned_issuer *)calloc(1, sizeof(*pi));
	if (!pi)
		return -ENOMEM;
	__atomic_store_n(&g_api, api, __ATOMIC_RELAXED);
	pi->api = api;
	pi->issuer = issuer;
	pi->context = api->context_alloc(1);
	pthread_mutex_init(&pi->mu, NULL);
	m->name = "example-pinned";
	m->fence_ops = &pinned_fence_ops;
	m->issuer_ops = &pinned_issuer_ops;
	m->priv = pi;
	m->param_names = pinned_params;
	return 0;
}

DMABUF_ISSUER_MODULE(pinned_init)
