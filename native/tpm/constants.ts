// TPM 2.0 and ESYS constants the binding uses. ESYS_TR values are ESAPI object references, not TPM handles.

export const ESYS_TR = {
  NONE: 0xfff,
  PASSWORD: 0x0ff,
  RH_OWNER: 0x101,
  RH_ENDORSEMENT: 0x10b,
} as const;

/** TPM algorithm identifiers (TPM 2.0 Part 2, TPM_ALG_ID): the binding's and the attestation parsers' one table. */
export const ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  AES: 0x0006,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAPSS: 0x0016,
  ECDSA: 0x0018,
  ECDAA: 0x001a,
  ECC: 0x0023,
  CFB: 0x0043,
} as const;

export const ECC_NIST_P256 = 0x0003;

export const TPM2_SU_CLEAR = 0x0000;
export const TPM2_SE_POLICY = 0x01;

/** TPM_RC_INITIALIZE: Startup was already done (swtpm started with startup-clear, or a second open). */
export const TPM_RC_INITIALIZE = 0x100;

/** TPM_RC_HANDLE (format one, handle number stripped): nothing is defined at that handle or NV index. */
export const TPM_RC_HANDLE = 0x08b;

/** TPM_RC_REFERENCE_H0 … _H6: a handle of the command names no loaded object (the TPM was restarted under us). */
export const TPM_RC_REFERENCE_H0 = 0x910;
export const TPM_RC_REFERENCE_H6 = 0x916;

/** TPM_RC_OBJECT_MEMORY: no free transient object slot (swtpm has 3; a lost context keeps its objects loaded). */
export const TPM_RC_OBJECT_MEMORY = 0x902;

/** TPM_RC_SESSION_MEMORY: no free session slot (a StartAuthSession whose answer was lost keeps one loaded). */
export const TPM_RC_SESSION_MEMORY = 0x903;

/** Where swtpm_setup and the TCG EK profile put the RSA EK and its certificate. */
export const EK_RSA_PERSISTENT_HANDLE = 0x81010001;
export const EK_RSA_CERT_NV_INDEX = 0x01c00002;

export const PCR_COUNT = 24;
export const SHA256_SIZE = 32;
export const MAX_QUALIFYING_DATA = 64;
export const MAX_EVENT_DATA = 1024;
/** NV reads in chunks no larger than the smallest TPM_PT_NV_BUFFER_MAX in the field. */
export const NV_READ_CHUNK = 1024;
