// TPM wire bytes <-> tpm2-tss C structs through libtss2-mu, for the types that hold unions.

import { TpmError } from './errors.js';
import { type MuType, marshaler, type Pointer, unmarshaler } from './library.js';

// Generous for every type unmarshalled here (TPM2B_PUBLIC is 616 bytes, TPM2B_ID_OBJECT and
// TPM2B_ENCRYPTED_SECRET are smaller); MU writes exactly sizeof(T), ESYS reads exactly sizeof(T).
const STRUCT_ROOM = 4096;
const WIRE_ROOM = 4096;

/** Wire bytes -> C struct in an opaque buffer that can be passed as `const T *`. */
export function toStruct(type: MuType, wire: Buffer, what: string = type): Buffer {
  const dest = Buffer.alloc(STRUCT_ROOM);
  const offset: [number] = [0];
  const rc = unmarshaler(type)(wire, wire.length, offset, dest) as number;
  if (rc !== 0) throw new TpmError(`unmarshal ${what} (Tss2_MU_${type}_Unmarshal)`, rc);
  if (Number(offset[0]) !== wire.length) {
    throw new TypeError(
      `${what}: ${wire.length} bytes given but a ${type} of ${Number(offset[0])} bytes was read`,
    );
  }
  return dest;
}

/** C struct at an ESYS-allocated pointer -> wire bytes. */
export function toWire(type: MuType, src: Pointer): Buffer {
  const buf = Buffer.alloc(WIRE_ROOM);
  const offset: [number] = [0];
  const rc = marshaler(type)(src, buf, buf.length, offset) as number;
  if (rc !== 0) throw new TpmError(`marshal ${type} (Tss2_MU_${type}_Marshal)`, rc);
  return Buffer.from(buf.subarray(0, Number(offset[0])));
}

/** A TPM2B's content, without its 2-byte size prefix. */
export function tpm2bContent(wire: Buffer): Buffer {
  const size = wire.readUInt16BE(0);
  return wire.subarray(2, 2 + size);
}

export function tpm2b(content: Buffer): Buffer {
  const out = Buffer.alloc(2 + content.length);
  out.writeUInt16BE(content.length, 0);
  content.copy(out, 2);
  return out;
}
