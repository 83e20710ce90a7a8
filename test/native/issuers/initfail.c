/* Test module: its init fails with -ENXIO, which load() must pass on. */
#include <dmabuf/issuer.h>
#include <errno.h>

static int fail_init(const struct dmabuf_core_api *api, dmabuf_issuer *issuer,
		     struct dmabuf_issuer_module *m)
{
	(void)api; (void)issuer; (void)m;
	return -ENXIO;
}

DMABUF_ISSUER_MODULE(fail_init)
