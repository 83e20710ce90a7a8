/* Test module: breaks the unload contract on purpose. It hands out fences with
 * enable_signaling/signaled/set_deadline ops and never signals them (no
 * signal_all). After unload such fences must not call into the (unmapped)
 * module: the core reports "unloaded-driver" and completes them with -ENODEV. */
#include <dmabuf/issuer.h>
#include <errno.h>
#include <stdlib.h>

static const char *driver(dmabuf_fence *f) { (void)f; return "forgetful"; }
static const char *timeline(dmabuf_fence *f) { (void)f; return "forgetful-timeline"; }
static bool enable_signaling(dmabuf_fence *f) { (void)f; return true; }
static bool signaled(dmabuf_fence *f) { (void)f; return false; }
static void set_deadline(dmabuf_fence *f, int64_t d) { (void)f; (void)d; }
static const struct dmabuf_fence_ops ops = {
	.get_driver_name = driver,
	.get_timeline_name = timeline,
	.enable_signaling = enable_signaling,
	.signaled = signaled,
	.set_deadline = set_deadline,
};

struct inst {
	const struct dmabuf_core_api *api;
	dmabuf_issuer *issuer;
};

static int create(void *priv, const struct dmabuf_fence_args *a, dmabuf_fence **out)
{
	struct inst *in = (struct inst *)priv;
	(void)a;
	dmabuf_fence *f = in->api->fence_alloc(in->issuer, 0);
	if (!f)
		return -ENOMEM;
	in->api->fence_init(f, NULL, 0, 1);
	*out = f;
	return 0;
}
static void shutdown(void *priv) { free(priv); }
static const struct dmabuf_issuer_ops iops = { .create_fence = create, .shutdown = shutdown };

static int forgetful_init(const struct dmabuf_core_api *api, dmabuf_issuer *issuer,
			  struct dmabuf_issuer_module *m)
{
	struct inst *in = (struct inst *)calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->api = api;
	in->issuer = issuer;
	m->fence_ops = &ops;
	m->issuer_ops = &iops;
	m->priv = in;
	return 0;
}

DMABUF_ISSUER_MODULE(forgetful_init)
