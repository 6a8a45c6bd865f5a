// TPM structures are big-endian on the wire: the two integer widths every marshaller here writes.

/** A 16-bit unsigned integer, big-endian. */
export function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}

/** A 32-bit unsigned integer, big-endian. */
export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
}
