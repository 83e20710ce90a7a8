/* Test module: same major, newer minor than the core knows (-EPROTO). */
#include <dmabuf/issuer.h>
#include <errno.h>

DMABUF_ISSUER_EXPORT const uint32_t dmabuf_issuer_abi =
	(DMABUF_ISSUER_ABI_MAJOR << 16) | (DMABUF_ISSUER_ABI_MINOR + 1u);
DMABUF_ISSUER_EXPORT int dmabuf_issuer_init(const struct dmabuf_core_api *api,
					    dmabuf_issuer *issuer,
					    struct dmabuf_issuer_module *m)
{
	(void)api; (void)issuer; (void)m;
	return -EIO;
}
