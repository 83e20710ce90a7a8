/* Test module: built for a future major ABI version, must be refused (-EPROTO). */
#include <dmabuf/issuer.h>
#include <errno.h>

DMABUF_ISSUER_EXPORT const uint32_t dmabuf_issuer_abi = (99u << 16) | 0u;
DMABUF_ISSUER_EXPORT int dmabuf_issuer_init(const struct dmabuf_core_api *api,
					    dmabuf_issuer *issuer,
					    struct dmabuf_issuer_module *m)
{
	(void)api; (void)issuer; (void)m;
	return -EIO; /* never reached: the core checks the version first */
}
