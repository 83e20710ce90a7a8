/*
 * Example issuer 2: a simulated GPU ring. Each fence is queued as a job that
 * "completes" `latency_us` after submission; a worker thread (the ring's
 * interrupt handler) signals completed jobs in order. Names-only ops, so the
 * fences detach when signalled.
 *
 * Unload: signal_all stops the ring, cancels queued jobs (-ECANCELED) and waits
 * until the worker has finished signalling the batch it had in hand, so that
 * every fence is signalled when it returns. shutdown (a grace period later)
 * joins the worker and frees the ring.
 *
 * Parameters: latency_us (get/set), queued, signalled, cancelled (get).
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#include "example_util.h"

struct job {
	dmabuf_fence *fence; /* one reference */
	int64_t due_ns;
};

struct ring {
	const struct dmabuf_core_api *api;
	dmabuf_issuer *issuer;
	uint64_t context;
	uint64_t next_seqno;
	char timeline[48];

	pthread_mutex_t mu;
	pthread_cond_t work_cv; /* worker: new job, stop or exit */
	pthread_cond_t idle_cv; /* signal_all: the worker put its batch down */
	struct job *q;          /* FIFO ring buffer */
	size_t head, len, cap;
	int64_t latency_ns;
	int stopping; /* signal_all ran: no new jobs, worker idles */
	int exiting;  /* shutdown: worker returns */
	int busy;     /* worker is signalling a batch outside the lock */
	uint64_t signalled, cancelled;
	pthread_t worker;
	int worker_started;
};

struct ring_fence {
	struct ring *r;
};

static const struct dmabuf_core_api *g_api;
#define API() __atomic_load_n(&g_api, __ATOMIC_RELAXED)

static const char *ring_driver_name(dmabuf_fence *f)
{
	(void)f;
	return "example-ring";
}

static const char *ring_timeline_name(dmabuf_fence *f)
{
	return ((struct ring_fence *)API()->fence_priv(f))->r->timeline;
}

static const struct dmabuf_fence_ops ring_fence_ops = {
	.get_driver_name = ring_driver_name,
	.get_timeline_name = ring_timeline_name,
};

static void timespec_at(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = (time_t)(ns / 1000000000LL);
	ts->tv_nsec = (long)(ns % 1000000000LL);
}

#define BATCH 64

static void *ring_worker(void *arg)
{
	struct ring *r = (struct ring *)arg;
	const struct dmabuf_core_api *api = r->api;
	dmabuf_fence *batch[BATCH];

	pthread_mutex_lock(&r->mu);
	while (!r->exiting) {
		if (r->stopping || r->len == 0) {
			pthread_cond_wait(&r->work_cv, &r->mu);
			continue;
		}
		int64_t now = api->monotonic_ns();
		struct job *head = &r->q[r->head];
		if (head->due_ns > now) {
			struct timespec ts;
			timespec_at(&ts, head->due_ns);
			pthread_cond_timedwait(&r->work_cv, &r->mu, &ts);
			continue;
		}
		size_t n = 0;
		while (r->len && n < BATCH && r->q[r->head].due_ns <= now) {
			batch[n++] = r->q[r->head].fence;
			r->head = (r->head + 1) % r->cap;
			r->len--;
		}
		r->busy = 1;
		pthread_mutex_unlock(&r->mu);
		/* Completion "interrupt": in order, outside the ring lock. */
		for (size_t i = 0; i < n; i++) {
			api->fence_signal(batch[i]);
			api->fence_put(batch[i]);
		}
		pthread_mutex_lock(&r->mu);
		r->busy = 0;
		r->signalled += n;
		pthread_cond_broadcast(&r->idle_cv);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static int ring_push(struct ring *r, dmabuf_fence *f, int64_t due)
{
	if (r->len == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct job *q = (struct job *)malloc(cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		for (size_t i = 0; i < r->len; i++)
			q[i] = r->q[(r->head + i) % r->cap];
		free(r->q);
		r->q = q;
		r->head = 0;
		r->cap = cap;
	}
	r->q[(r->head + r->len) % r->cap] = (struct job){f, due};
	r->len++;
	return 0;
}

static int ring_create_fence(void *priv, const struct dmabuf_fence_args *args,
			     dmabuf_fence **out)
{
	struct ring *r = (struct ring *)priv;
	const struct dmabuf_core_api *api = r->api;
	dmabuf_fence *f = api->fence_alloc(r->issuer, sizeof(struct ring_fence));
	if (!f)
		return -ENOMEM;
	((struct ring_fence *)api->fence_priv(f))->r = r;

	pthread_mutex_lock(&r->mu);
	if (r->stopping) {
		pthread_mutex_unlock(&r->mu);
		api->fence_discard(f);
		return -ENODEV;
	}
	/* A ring's seqnos are its own: the seqno hint is ignored, jobs complete in order. */
	uint64_t seqno = ++r->next_seqno;
	if (args_seqno64(args))
		api->fence_init64(f, NULL, r->context, seqno);
	else
		api->fence_init(f, NULL, r->context, seqno);
	int rc = ring_push(r, api->fence_get(f), api->monotonic_ns() + r->latency_ns);
	if (rc == 0)
		pthread_cond_signal(&r->work_cv);
	pthread_mutex_unlock(&r->mu);
	if (rc) {
		api->fence_put(f);
		signal_with_error(api, f, rc);
		api->fence_put(f);
		return rc;
	}
	*out = f;
	return 0;
}

static void ring_signal_all(void *priv)
{
	struct ring *r = (struct ring *)priv;
	pthread_mutex_lock(&r->mu);
	r->stopping = 1;
	size_t n = r->len, head = r->head, cap = r->cap;
	struct job *q = r->q;
	r->q = NULL;
	r->len = r->head = r->cap = 0;
	/* The worker may hold a batch it took before we stopped it: wait for it. */
	while (r->busy)
		pthread_cond_wait(&r->idle_cv, &r->mu);
	r->cancelled += n;
	pthread_mutex_unlock(&r->mu);
	for (size_t i = 0; i < n; i++) {
		dmabuf_fence *f = q[(head + i) % cap].fence;
		signal_with_error(r->api, f, -ECANCELED);
		r->api->fence_put(f);
	}
	free(q);
}

static void ring_shutdown(void *priv)
{
	struct ring *r = (struct ring *)priv;
	if (r->worker_started) {
		pthread_mutex_lock(&r->mu);
		r->exiting = 1;
		pthread_cond_broadcast(&r->work_cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->worker, NULL);
	}
	for (size_t i = 0; i < r->len; i++) /* only if signal_all never ran (failed init) */
		r->api->fence_put(r->q[(r->head + i) % r->cap].fence);
	free(r->q);
	pthread_cond_destroy(&r->work_cv);
	pthread_cond_destroy(&r->idle_cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static int ring_set_param(void *priv, const char *name, int64_t value)
{
	struct ring *r = (struct ring *)priv;
	if (strcmp(name, "latency_us"))
		return -ENOENT;
	if (value < 0 || value > 60LL * 1000 * 1000)
		return -EINVAL;
	pthread_mutex_lock(&r->mu);
	r->latency_ns = value * 1000;
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static int ring_get_param(void *priv, const char *name, int64_t *value)
{
	struct ring *r = (struct ring *)priv;
	int rc = 0;
	pthread_mutex_lock(&r->mu);
	if (!strcmp(name, "latency_us"))
		*value = r->latency_ns / 1000;
	else if (!strcmp(name, "queued"))
		*value = (int64_t)r->len;
	else if (!strcmp(name, "signalled"))
		*value = (int64_t)r->signalled;
	else if (!strcmp(name, "cancelled"))
		*value = (int64_t)r->cancelled;
	else if (!strcmp(name, "context"))
		*value = (int64_t)r->context;
	else
		rc = -ENOENT;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static const struct dmabuf_issuer_ops ring_issuer_ops = {
	.create_fence = ring_create_fence,
	.signal_all = ring_signal_all,
	.shutdown = ring_shutdown,
	.set_param = ring_set_param,
	.get_param = ring_get_param,
};

static const char *const ring_params[] = {"latency_us", "queued", "signalled", "cancelled",
					  "context", NULL};

static int ring_init(const struct dmabuf_core_api *api, dmabuf_issuer *issuer,
		     struct dmabuf_issuer_module *m)
{
	struct ring *r = (struct ring *)calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	__atomic_store_n(&g_api, api, __ATOMIC_RELAXED);
	r->api = api;
	r->issuer = issuer;
	r->context = api->context_alloc(1);
	r->latency_ns = 100 * 1000; /* 100 us */
	snprintf(r->timeline, sizeof(r->timeline), "ring-%llu", (unsigned long long)r->context);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->idle_cv, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->work_cv, &ca);
	pthread_condattr_destroy(&ca);

	/* The worker takes no signals: the host process (Node) owns them. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&r->worker, NULL, ring_worker, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		ring_shutdown(r);
		return -rc;
	}
	r->worker_started = 1;

	m->name = "example-ring";
	m->fence_ops = &ring_fence_ops;
	m->issuer_ops = &ring_issuer_ops;
	m->priv = r;
	m->param_names = ring_params;
	return 0;
}

DMABUF_ISSUER_MODULE(ring_init)
