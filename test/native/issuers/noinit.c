/* Test module: has the ABI symbol but no entry point (-ENOSYS). */
#include <dmabuf/issuer.h>

DMABUF_ISSUER_EXPORT const uint32_t dmabuf_issuer_abi = DMABUF_ISSUER_ABI_VERSION;
