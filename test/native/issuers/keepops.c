/* Test module: names-only ops but the DMABUF_ISSUER_F_KEEP_OPS flag (pre-7.1
 * behaviour requested by the module itself). Fences are signalled by the caller;
 * signal_all signals what is left. Kept minimal: one instance, fixed names. */
#include <dmabuf/issuer.h>
#include <errno.h>
#include <stdlib.h>

static const char *driver(dmabuf_fence *f) { (void)f; return "keepops"; }
static const char *timeline(dmabuf_fence *f) { (void)f; return "keepops-timeline"; }
static const struct dmabuf_fence_ops ops = { .get_driver_name = driver,
					     .get_timeline_name = timeline };

struct inst {
	const struct dmabuf_core_api *api;
	dmabuf_issuer *issuer;
	dmabuf_fence *last; /* one reference; signalled at unload */
};

static int create(void *priv, const struct dmabuf_fence_args *a, dmabuf_fence **out)
{
	struct inst *in = (struct inst *)priv;
	(void)a;
	dmabuf_fence *f = in->api->fence_alloc(in->issuer, 0);
	if (!f)
		return -ENOMEM;
	in->api->fence_init(f, NULL, 0, 0);
	if (in->last) {
		in->api->fence_signal(in->last);
		in->api->fence_put(in->last);
	}
	in->last = in->api->fence_get(f);
	*out = f;
	return 0;
}
static void signal_all(void *priv)
{
	struct inst *in = (struct inst *)priv;
	if (in->last) {
		in->api->fence_signal(in->last);
		in->api->fence_put(in->last);
		in->last = NULL;
	}
}
static void shutdown(void *priv) { free(priv); }
static const struct dmabuf_issuer_ops iops = {
	.create_fence = create, .signal_all = signal_all, .shutdown = shutdown };

static int keepops_init(const struct dmabuf_core_api *api, dmabuf_issuer *issuer,
			struct dmabuf_issuer_module *m)
{
	struct inst *in = (struct inst *)calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->api = api;
	in->issuer = issuer;
	m->flags = DMABUF_ISSUER_F_KEEP_OPS;
	m->name = "keepops";
	m->fence_ops = &ops;
	m->issuer_ops = &iops;
	m->priv = in;
	return 0;
}

DMABUF_ISSUER_MODULE(keepops_init)
