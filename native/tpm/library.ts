// koffi loading of tpm2-tss (ESAPI, TCTI loader, marshalling, RC decoding) and the flat C structs.
// Everything that contains a union crosses as TPM wire bytes through libtss2-mu (see mu.ts): laying those
// out by hand is where FFI bindings corrupt memory.
import koffi, { type LibraryHandle, type TypeObject } from 'koffi';

type KoffiFunction = ReturnType<LibraryHandle['func']>;

// ESYS prints a WARNING/ERROR line for every failing command, including the ones we expect and handle.
// The library reads TSS2_LOG from the C environment, which Node's process.env writes through to.
if (process.env.TSS2_LOG === undefined) process.env.TSS2_LOG = 'all+none';

function load(soname: string): LibraryHandle {
  try {
    return koffi.load(soname);
  } catch (err) {
    throw new Error(
      `cannot load ${soname} (Debian packages libtss2-esys-3.0.2-0, libtss2-tctildr0, libtss2-mu0, libtss2-rc0): ${(err as Error).message}`,
    );
  }
}

const esys = load('libtss2-esys.so.0');
const tctildr = load('libtss2-tctildr.so.0');
const mu = load('libtss2-mu.so.0');
const rc = load('libtss2-rc.so.0');

export const TPMS_PCR_SELECTION = koffi.struct('TPMS_PCR_SELECTION', {
  hash: 'uint16_t',
  sizeofSelect: 'uint8_t',
  pcrSelect: koffi.array('uint8_t', 4, 'Array'),
});
export const TPML_PCR_SELECTION = koffi.struct('TPML_PCR_SELECTION', {
  count: 'uint32_t',
  pcrSelections: koffi.array(TPMS_PCR_SELECTION, 16, 'Array'),
});
export const TPM2B_DIGEST = koffi.struct('TPM2B_DIGEST', {
  size: 'uint16_t',
  buffer: koffi.array('uint8_t', 64, 'Array'),
});
export const TPML_DIGEST = koffi.struct('TPML_DIGEST', {
  count: 'uint32_t',
  digests: koffi.array(TPM2B_DIGEST, 8, 'Array'),
});
// TPMU_HA is a union of byte arrays only, so TPMT_HA is flat: the largest member (SHA-512) sets its size.
export const TPMT_HA = koffi.struct('TPMT_HA', {
  hashAlg: 'uint16_t',
  digest: koffi.array('uint8_t', 64, 'Array'),
});
export const TPML_DIGEST_VALUES = koffi.struct('TPML_DIGEST_VALUES', {
  count: 'uint32_t',
  digests: koffi.array(TPMT_HA, 16, 'Array'),
});
export const TPM2B_EVENT = koffi.struct('TPM2B_EVENT', {
  size: 'uint16_t',
  buffer: koffi.array('uint8_t', 1024, 'Array'),
});
// TPMT_SYM_DEF's unions hold one uint16 each, so it is flat as well.
export const TPMT_SYM_DEF = koffi.struct('TPMT_SYM_DEF', {
  algorithm: 'uint16_t',
  keyBits: 'uint16_t',
  mode: 'uint16_t',
});

// Sizes measured with a C sizeof probe against tpm2-tss 3.2.1; a mismatch means memory corruption, so refuse to run.
const EXPECTED_SIZES: ReadonlyArray<[TypeObject, number]> = [
  [TPMS_PCR_SELECTION, 8],
  [TPML_PCR_SELECTION, 132],
  [TPM2B_DIGEST, 66],
  [TPML_DIGEST, 532],
  [TPMT_HA, 66],
  [TPML_DIGEST_VALUES, 1060],
  [TPM2B_EVENT, 1026],
  [TPMT_SYM_DEF, 6],
];
for (const [type, size] of EXPECTED_SIZES) {
  const actual = koffi.sizeof(type);
  if (actual !== size)
    throw new Error(`koffi lays out ${type.name} as ${actual} bytes, tpm2-tss expects ${size}`);
}

/** A C pointer as koffi 3 hands it out. */
export type Pointer = bigint | null;

// Output parameters are `T **` allocated by ESYS: declared as `void **`, read back as BigInt, freed with Esys_Free.
export const fn = {
  TctiLdr_Initialize: tctildr.func('uint32_t Tss2_TctiLdr_Initialize(const char *conf, _Out_ void **tcti)'),
  TctiLdr_Finalize: tctildr.func('void Tss2_TctiLdr_Finalize(_Inout_ void **tcti)'),
  RC_Decode: rc.func('const char *Tss2_RC_Decode(uint32_t rc)'),

  Esys_Initialize: esys.func('uint32_t Esys_Initialize(_Out_ void **ctx, void *tcti, void *abiVersion)'),
  Esys_Finalize: esys.func('void Esys_Finalize(_Inout_ void **ctx)'),
  Esys_Free: esys.func('void Esys_Free(void *ptr)'),
  Esys_Startup: esys.func('uint32_t Esys_Startup(void *ctx, uint16_t startupType)'),
  Esys_GetRandom: esys.func(
    'uint32_t Esys_GetRandom(void *ctx, uint32_t s1, uint32_t s2, uint32_t s3, uint16_t bytesRequested, _Out_ void **randomBytes)',
  ),
  Esys_PCR_Read: esys.func(
    'uint32_t Esys_PCR_Read(void *ctx, uint32_t s1, uint32_t s2, uint32_t s3, const TPML_PCR_SELECTION *selection, ' +
      '_Out_ uint32_t *updateCounter, _Out_ void **selectionOut, _Out_ void **values)',
  ),
  Esys_PCR_Extend: esys.func(
    'uint32_t Esys_PCR_Extend(void *ctx, uint32_t pcr, uint32_t s1, uint32_t s2, uint32_t s3, const TPML_DIGEST_VALUES *digests)',
  ),
  Esys_PCR_Event: esys.func(
    'uint32_t Esys_PCR_Event(void *ctx, uint32_t pcr, uint32_t s1, uint32_t s2, uint32_t s3, const TPM2B_EVENT *eventData, ' +
      '_Out_ void **digests)',
  ),
  Esys_CreatePrimary: esys.func(
    'uint32_t Esys_CreatePrimary(void *ctx, uint32_t primaryHandle, uint32_t s1, uint32_t s2, uint32_t s3, ' +
      'const void *inSensitive, const void *inPublic, const TPM2B_DIGEST *outsideInfo, const TPML_PCR_SELECTION *creationPCR, ' +
      '_Out_ uint32_t *objectHandle, _Out_ void **outPublic, _Out_ void **creationData, _Out_ void **creationHash, ' +
      '_Out_ void **creationTicket)',
  ),
  Esys_ReadPublic: esys.func(
    'uint32_t Esys_ReadPublic(void *ctx, uint32_t object, uint32_t s1, uint32_t s2, uint32_t s3, ' +
      '_Out_ void **outPublic, _Out_ void **name, _Out_ void **qualifiedName)',
  ),
  Esys_Quote: esys.func(
    'uint32_t Esys_Quote(void *ctx, uint32_t signHandle, uint32_t s1, uint32_t s2, uint32_t s3, ' +
      'const TPM2B_DIGEST *qualifyingData, const void *inScheme, const TPML_PCR_SELECTION *pcrSelect, ' +
      '_Out_ void **quoted, _Out_ void **signature)',
  ),
  Esys_FlushContext: esys.func('uint32_t Esys_FlushContext(void *ctx, uint32_t flushHandle)'),
  Esys_TR_Close: esys.func('uint32_t Esys_TR_Close(void *ctx, _Inout_ uint32_t *object)'),
  Esys_TR_FromTPMPublic: esys.func(
    'uint32_t Esys_TR_FromTPMPublic(void *ctx, uint32_t tpmHandle, uint32_t s1, uint32_t s2, uint32_t s3, _Out_ uint32_t *object)',
  ),
  Esys_NV_ReadPublic: esys.func(
    'uint32_t Esys_NV_ReadPublic(void *ctx, uint32_t nvIndex, uint32_t s1, uint32_t s2, uint32_t s3, ' +
      '_Out_ void **nvPublic, _Out_ void **nvName)',
  ),
  Esys_NV_Read: esys.func(
    'uint32_t Esys_NV_Read(void *ctx, uint32_t authHandle, uint32_t nvIndex, uint32_t s1, uint32_t s2, uint32_t s3, ' +
      'uint16_t size, uint16_t offset, _Out_ void **data)',
  ),
  Esys_StartAuthSession: esys.func(
    'uint32_t Esys_StartAuthSession(void *ctx, uint32_t tpmKey, uint32_t bind, uint32_t s1, uint32_t s2, uint32_t s3, ' +
      'const TPM2B_DIGEST *nonceCaller, uint8_t sessionType, const TPMT_SYM_DEF *symmetric, uint16_t authHash, ' +
      '_Out_ uint32_t *sessionHandle)',
  ),
  Esys_PolicySecret: esys.func(
    'uint32_t Esys_PolicySecret(void *ctx, uint32_t authHandle, uint32_t policySession, uint32_t s1, uint32_t s2, uint32_t s3, ' +
      'const TPM2B_DIGEST *nonceTPM, const TPM2B_DIGEST *cpHashA, const TPM2B_DIGEST *policyRef, int32_t expiration, ' +
      '_Out_ void **timeout, _Out_ void **policyTicket)',
  ),
  Esys_ActivateCredential: esys.func(
    'uint32_t Esys_ActivateCredential(void *ctx, uint32_t activateHandle, uint32_t keyHandle, uint32_t s1, uint32_t s2, uint32_t s3, ' +
      'const void *credentialBlob, const void *secret, _Out_ void **certInfo)',
  ),
};

/** Marshal (C struct -> wire) and Unmarshal (wire -> C struct) for the union-heavy types, by TSS type name. */
export type MuType =
  | 'TPM2B_PUBLIC'
  | 'TPM2B_NAME'
  | 'TPM2B_ATTEST'
  | 'TPMT_SIGNATURE'
  | 'TPMT_SIG_SCHEME'
  | 'TPM2B_SENSITIVE_CREATE'
  | 'TPM2B_ID_OBJECT'
  | 'TPM2B_ENCRYPTED_SECRET'
  | 'TPM2B_NV_PUBLIC'
  | 'TPM2B_MAX_NV_BUFFER'
  | 'TPM2B_DIGEST'
  | 'TPM2B_CREATION_DATA';

const marshalers = new Map<MuType, KoffiFunction>();
const unmarshalers = new Map<MuType, KoffiFunction>();

export function marshaler(type: MuType): KoffiFunction {
  let f = marshalers.get(type);
  if (!f) {
    f = mu.func(
      `uint32_t Tss2_MU_${type}_Marshal(const void *src, uint8_t *buffer, size_t size, _Inout_ size_t *offset)`,
    );
    marshalers.set(type, f);
  }
  return f;
}

export function unmarshaler(type: MuType): KoffiFunction {
  let f = unmarshalers.get(type);
  if (!f) {
    f = mu.func(
      `uint32_t Tss2_MU_${type}_Unmarshal(const uint8_t *buffer, size_t size, _Inout_ size_t *offset, void *dest)`,
    );
    unmarshalers.set(type, f);
  }
  return f;
}

/** Reads a flat struct ESYS allocated. */
export function decodeStruct<T>(pointer: Pointer, type: TypeObject): T {
  if (pointer === null) throw new Error(`ESYS returned a null ${type.name}`);
  return koffi.decode(pointer, type) as T;
}
