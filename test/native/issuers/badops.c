/* Test module: forgets the mandatory timeline-name callback (-EINVAL); load()
 * must still call its shutdown so nothing leaks. */
#include <dmabuf/issuer.h>
#include <errno.h>
#include <stdlib.h>

static const char *name(dmabuf_fence *f) { (void)f; return "badops"; }
static const struct dmabuf_fence_ops ops = { .get_driver_name = name };
static int create(void *priv, const struct dmabuf_fence_args *a, dmabuf_fence **out)
{
	(void)priv; (void)a; (void)out;
	return -EIO;
}
static void shutdown(void *priv) { free(priv); }
static const struct dmabuf_issuer_ops iops = { .create_fence = create, .shutdown = shutdown };

static int badops_init(const struct dmabuf_core_api *api, dmabuf_issuer *issuer,
		       struct dmabuf_issuer_module *m)
{
	(void)api; (void)issuer;
	m->fence_ops = &ops;
	m->issuer_ops = &iops;
	m->priv = malloc(16);
	return 0;
}

DMABUF_ISSUER_MODULE(badops_init)
