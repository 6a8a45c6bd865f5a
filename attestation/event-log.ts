import { createHash } from 'node:crypto';
import { ByteReader } from './byte-reader.js';
import { ParseError } from './errors.js';
import { hashAlgorithm, TPM_ALG } from './tpm-structures.js';

/** Event types of the TCG PC Client Platform Firmware Profile (§10.4.1). */
export const EVENT_TYPES: ReadonlyMap<number, string> = new Map([
  [0x00000000, 'EV_PREBOOT_CERT'],
  [0x00000001, 'EV_POST_CODE'],
  [0x00000002, 'EV_UNUSED'],
  [0x00000003, 'EV_NO_ACTION'],
  [0x00000004, 'EV_SEPARATOR'],
  [0x00000005, 'EV_ACTION'],
  [0x00000006, 'EV_EVENT_TAG'],
  [0x00000007, 'EV_S_CRTM_CONTENTS'],
  [0x00000008, 'EV_S_CRTM_VERSION'],
  [0x00000009, 'EV_CPU_MICROCODE'],
  [0x0000000a, 'EV_PLATFORM_CONFIG_FLAGS'],
  [0x0000000b, 'EV_TABLE_OF_DEVICES'],
  [0x0000000c, 'EV_COMPACT_HASH'],
  [0x0000000d, 'EV_IPL'],
  [0x0000000e, 'EV_IPL_PARTITION_DATA'],
  [0x0000000f, 'EV_NONHOST_CODE'],
  [0x00000010, 'EV_NONHOST_CONFIG'],
  [0x00000011, 'EV_NONHOST_INFO'],
  [0x00000012, 'EV_OMIT_BOOT_DEVICE_EVENTS'],
  [0x00000013, 'EV_POST_CODE2'],
  [0x80000000, 'EV_EFI_EVENT_BASE'],
  [0x80000001, 'EV_EFI_VARIABLE_DRIVER_CONFIG'],
  [0x80000002, 'EV_EFI_VARIABLE_BOOT'],
  [0x80000003, 'EV_EFI_BOOT_SERVICES_APPLICATION'],
  [0x80000004, 'EV_EFI_BOOT_SERVICES_DRIVER'],
  [0x80000005, 'EV_EFI_RUNTIME_SERVICES_DRIVER'],
  [0x80000006, 'EV_EFI_GPT_EVENT'],
  [0x80000007, 'EV_EFI_ACTION'],
  [0x80000008, 'EV_EFI_PLATFORM_FIRMWARE_BLOB'],
  [0x80000009, 'EV_EFI_HANDOFF_TABLES'],
  [0x8000000a, 'EV_EFI_PLATFORM_FIRMWARE_BLOB2'],
  [0x8000000b, 'EV_EFI_HANDOFF_TABLES2'],
  [0x8000000c, 'EV_EFI_VARIABLE_BOOT2'],
  [0x8000000d, 'EV_EFI_GPT_EVENT2'],
  [0x80000010, 'EV_EFI_HCRTM_EVENT'],
  [0x800000e0, 'EV_EFI_VARIABLE_AUTHORITY'],
  [0x800000e1, 'EV_EFI_SPDM_FIRMWARE_BLOB'],
  [0x800000e2, 'EV_EFI_SPDM_FIRMWARE_CONFIG'],
]);

export const EV_NO_ACTION = 0x00000003;
const SPEC_ID_SIGNATURE = 'Spec ID Event03';
const STARTUP_LOCALITY_SIGNATURE = 'StartupLocality\0';

export function eventTypeName(type: number): string {
  return EVENT_TYPES.get(type) ?? `EV_UNKNOWN_0x${type.toString(16).padStart(8, '0')}`;
}

export interface LogEvent {
  /** position in the log; 0 is the Spec ID header (same numbering as tpm2_eventlog's EventNum) */
  index: number;
  /** byte offset of the event in the log */
  offset: number;
  pcr: number;
  type: number;
  typeName: string;
  /** digest per TPM hash algorithm id (the header event carries one SHA-1 field of zeros) */
  digests: Map<number, Buffer>;
  data: Buffer;
}

export interface SpecIdEvent {
  platformClass: number;
  specVersion: string;
  uintnSize: number;
  algorithms: Array<{ algorithmId: number; digestSize: number }>;
  vendorInfo: Buffer;
}

export interface EventLog {
  specId: SpecIdEvent;
  /** every event, header included */
  events: LogEvent[];
}

function parseSpecId(data: Buffer, base: number): SpecIdEvent {
  const r = new ByteReader(data, 'event log', {
    littleEndian: true,
    base,
    truncatedHint: ' (truncated log)',
  });
  const signature = r.bytes(16, 'Spec ID signature').toString('latin1');
  if (signature !== `${SPEC_ID_SIGNATURE}\0`) {
    throw new ParseError(
      'event log',
      base,
      `Spec ID signature ${JSON.stringify(signature)}, expected "${SPEC_ID_SIGNATURE}" (not a crypto-agile log)`,
    );
  }
  const platformClass = r.u32('Spec ID platformClass');
  const minor = r.u8('Spec ID specVersionMinor');
  const major = r.u8('Spec ID specVersionMajor');
  const errata = r.u8('Spec ID specErrata');
  const uintnSize = r.u8('Spec ID uintnSize');
  const countOffset = base + r.offset;
  const count = r.u32('Spec ID numberOfAlgorithms');
  if (count === 0 || count > 16) {
    throw new ParseError('event log', countOffset, `Spec ID numberOfAlgorithms ${count} out of range 1..16`);
  }
  const algorithms: SpecIdEvent['algorithms'] = [];
  for (let i = 0; i < count; i++) {
    algorithms.push({
      algorithmId: r.u16(`Spec ID digestSizes[${i}].algorithmId`),
      digestSize: r.u16(`Spec ID digestSizes[${i}].digestSize`),
    });
  }
  const vendorInfoSize = r.u8('Spec ID vendorInfoSize');
  const vendorInfo = r.bytes(vendorInfoSize, 'Spec ID vendorInfo');
  return { platformClass, specVersion: `${major}.${minor}.${errata}`, uintnSize, algorithms, vendorInfo };
}

/**
 * Parses a TCG PC Client crypto-agile event log: a TCG_PCClientPCREvent header holding the Spec ID event, then
 * TCG_PCR_EVENT2 records with one digest per algorithm the header declares. Malformed input throws a ParseError
 * naming the byte offset.
 */
export function parseEventLog(buf: Buffer): EventLog {
  const r = new ByteReader(buf, 'event log', { littleEndian: true, truncatedHint: ' (truncated log)' });
  // Header: SHA-1 format record (pcrIndex, eventType, digest[20], eventSize, event).
  const pcr = r.u32('header.pcrIndex');
  const type = r.u32('header.eventType');
  if (type !== EV_NO_ACTION || pcr !== 0) {
    throw new ParseError(
      'event log',
      0,
      `first event must be EV_NO_ACTION on PCR 0 (Spec ID), got type 0x${type.toString(16)}`,
    );
  }
  const headerDigest = r.bytes(20, 'header.digest');
  const headerSize = r.u32('header.eventSize');
  const headerDataOffset = r.offset;
  const headerData = r.bytes(headerSize, 'header.event');
  const specId = parseSpecId(headerData, headerDataOffset);
  const sizes = new Map(specId.algorithms.map((a) => [a.algorithmId, a.digestSize]));
  const events: LogEvent[] = [
    {
      index: 0,
      offset: 0,
      pcr,
      type,
      typeName: eventTypeName(type),
      digests: new Map([[TPM_ALG.SHA1, headerDigest]]),
      data: headerData,
    },
  ];

  while (r.offset < buf.length) {
    const offset = r.offset;
    const index = events.length;
    const ctx = `event ${index}`;
    const pcrIndex = r.u32(`${ctx}.pcrIndex`);
    const eventType = r.u32(`${ctx}.eventType`);
    const count = r.u32(`${ctx}.digests.count`);
    if (count > specId.algorithms.length) {
      throw new ParseError(
        'event log',
        offset + 8,
        `${ctx}: ${count} digests, the Spec ID header declares ${specId.algorithms.length}`,
      );
    }
    const digests = new Map<number, Buffer>();
    for (let i = 0; i < count; i++) {
      const algOffset = r.offset;
      const alg = r.u16(`${ctx}.digests[${i}].hashAlg`);
      const size = sizes.get(alg);
      if (size === undefined) {
        throw new ParseError(
          'event log',
          algOffset,
          `${ctx}: digest algorithm 0x${alg.toString(16)} not declared in the Spec ID header`,
        );
      }
      digests.set(alg, r.bytes(size, `${ctx}.digests[${i}]`));
    }
    const size = r.u32(`${ctx}.eventSize`);
    const data = r.bytes(size, `${ctx}.event`);
    if (pcrIndex > 31)
      throw new ParseError('event log', offset, `${ctx}: PCR index ${pcrIndex} out of range`);
    events.push({
      index,
      offset,
      pcr: pcrIndex,
      type: eventType,
      typeName: eventTypeName(eventType),
      digests,
      data,
    });
  }
  return { specId, events };
}

/**
 * Replays the log into PCR values for one bank (SHA-256 by default). Returns only the PCRs the log extends;
 * PCR 0 starts at the locality of a StartupLocality event when the log has one.
 */
export function replayEventLog(log: EventLog, hashAlg: number = TPM_ALG.SHA256): Map<number, Buffer> {
  const hash = hashAlgorithm(hashAlg);
  if (!hash) throw new RangeError(`event log replay: unsupported hash algorithm 0x${hashAlg.toString(16)}`);
  if (!log.specId.algorithms.some((a) => a.algorithmId === hashAlg)) {
    throw new ParseError('event log', 0, `the log has no ${hash.name} bank`);
  }
  const pcrs = new Map<number, Buffer>();
  for (const ev of log.events) {
    if (ev.index === 0) continue;
    if (ev.type === EV_NO_ACTION) {
      if (
        ev.pcr === 0 &&
        ev.data.subarray(0, 16).toString('latin1') === STARTUP_LOCALITY_SIGNATURE &&
        ev.data.length >= 17
      ) {
        const init = Buffer.alloc(hash.size);
        init[hash.size - 1] = ev.data[16]!;
        if (!pcrs.has(0)) pcrs.set(0, init);
      }
      continue;
    }
    const digest = ev.digests.get(hashAlg);
    if (!digest) throw new ParseError('event log', ev.offset, `event ${ev.index} has no ${hash.name} digest`);
    const prev = pcrs.get(ev.pcr) ?? Buffer.alloc(hash.size);
    pcrs.set(ev.pcr, createHash(hash.name).update(prev).update(digest).digest());
  }
  return pcrs;
}

/** The events that extend a PCR, in log order (EV_NO_ACTION excluded). */
export function eventsForPcr(log: EventLog, pcr: number): LogEvent[] {
  return log.events.filter((ev) => ev.index > 0 && ev.pcr === pcr && ev.type !== EV_NO_ACTION);
}

function guid(b: Buffer): string {
  if (b.length < 16) return b.toString('hex');
  const h = (x: Buffer) => x.toString('hex');
  return [
    b.readUInt32LE(0).toString(16).padStart(8, '0'),
    b.readUInt16LE(4).toString(16).padStart(4, '0'),
    b.readUInt16LE(6).toString(16).padStart(4, '0'),
    h(b.subarray(8, 10)),
    h(b.subarray(10, 16)),
  ].join('-');
}

function utf16(b: Buffer): string {
  return b.toString('utf16le').replace(/\0+$/, '');
}

function printable(b: Buffer): string | undefined {
  const s = b.toString('latin1').replace(/\0+$/, '');
  return s.length > 0 && /^[\x20-\x7e\t\r\n]*$/.test(s) ? s : undefined;
}

const hex = (n: number | bigint) => `0x${n.toString(16)}`;

/** UEFI device path in the usual text notation, for the node types that appear in boot logs. */
export function describeDevicePath(b: Buffer): string {
  const nodes: string[] = [];
  let o = 0;
  while (o + 4 <= b.length) {
    const type = b[o]!;
    const sub = b[o + 1]!;
    const len = b.readUInt16LE(o + 2);
    if (len < 4 || o + len > b.length) {
      nodes.push(`<malformed node at ${o}>`);
      break;
    }
    const body = b.subarray(o + 4, o + len);
    o += len;
    if (type === 0x7f) {
      if (sub === 0xff) break;
      nodes.push(',');
      continue;
    }
    if (type === 0x01 && sub === 0x01 && body.length >= 2)
      nodes.push(`Pci(${hex(body[1]!)},${hex(body[0]!)})`);
    else if (type === 0x01 && sub === 0x04) nodes.push(`VenHw(${guid(body)})`);
    else if (type === 0x02 && sub === 0x01 && body.length >= 8) {
      const hid = body.readUInt32LE(0);
      const uid = body.readUInt32LE(4);
      nodes.push(hid === 0x0a0341d0 ? `PciRoot(${hex(uid)})` : `Acpi(${hex(hid)},${hex(uid)})`);
    } else if (type === 0x04 && sub === 0x01 && body.length >= 38) {
      const part = body.readUInt32LE(0);
      const format = body[36] === 2 ? 'GPT' : 'MBR';
      const sig = body[37] === 2 ? guid(body.subarray(20, 36)) : hex(body.readUInt32LE(20));
      nodes.push(`HD(${part},${format},${sig})`);
    } else if (type === 0x04 && sub === 0x03) nodes.push(`VenMedia(${guid(body)})`);
    else if (type === 0x04 && sub === 0x04) nodes.push(utf16(body));
    else if (type === 0x04 && sub === 0x06) nodes.push(`FvFile(${guid(body)})`);
    else if (type === 0x04 && sub === 0x07) nodes.push(`Fv(${guid(body)})`);
    else nodes.push(`Path(${type},${sub},${body.toString('hex')})`);
  }
  return nodes.join('/').replace(/\/,\//g, ',');
}

/**
 * Whether the event's data is covered by its SHA-256 digest (the digest is the hash of exactly this data). Only
 * then does a replayed log vouch for the data; otherwise (an image's device path beside the image's hash, a blob's
 * address beside the blob's hash) anyone could have rewritten it without changing any PCR.
 */
export function eventDataVerified(ev: LogEvent): boolean {
  const digest = ev.digests.get(TPM_ALG.SHA256);
  return digest !== undefined && createHash('sha256').update(ev.data).digest().equals(digest);
}

/**
 * describeEvent, marked "unverified event data" when no digest covers the data: what a refusal explanation or an
 * audit record may quote of a log that only the digests vouch for.
 */
export function describeEventChecked(ev: LogEvent): string {
  const text = describeEvent(ev);
  return eventDataVerified(ev) ? text : `unverified event data: ${text}`;
}

/** A one-line human description of what an event measured. Never throws: unknown layouts fall back to a summary. */
export function describeEvent(ev: LogEvent): string {
  try {
    return describeData(ev);
  } catch {
    return `${ev.data.length} bytes of event data`;
  }
}

function describeData(ev: LogEvent): string {
  const d = ev.data;
  switch (ev.typeName) {
    case 'EV_NO_ACTION': {
      const sig = d.subarray(0, 16).toString('latin1');
      if (sig.startsWith(SPEC_ID_SIGNATURE)) return 'Spec ID event (log header)';
      if (sig === STARTUP_LOCALITY_SIGNATURE) return `startup locality ${d[16]}`;
      return printable(d) ?? `${d.length} bytes`;
    }
    case 'EV_SEPARATOR':
      return d.readUInt32LE(0) === 0 ? 'separator' : `separator (error ${hex(d.readUInt32LE(0))})`;
    case 'EV_S_CRTM_VERSION':
      return `CRTM version ${JSON.stringify(utf16(d))}`;
    case 'EV_POST_CODE':
    case 'EV_S_CRTM_CONTENTS':
    case 'EV_EFI_PLATFORM_FIRMWARE_BLOB':
      if (d.length === 16)
        return `firmware blob at ${hex(d.readBigUInt64LE(0))}, ${hex(d.readBigUInt64LE(8))} bytes`;
      return printable(d) ?? `${d.length} bytes`;
    case 'EV_EFI_PLATFORM_FIRMWARE_BLOB2': {
      const n = d[0]!;
      const desc = d.subarray(1, 1 + n).toString('latin1');
      return `firmware blob ${JSON.stringify(desc)} at ${hex(d.readBigUInt64LE(1 + n))}, ${hex(d.readBigUInt64LE(9 + n))} bytes`;
    }
    case 'EV_EFI_VARIABLE_DRIVER_CONFIG':
    case 'EV_EFI_VARIABLE_BOOT':
    case 'EV_EFI_VARIABLE_BOOT2':
    case 'EV_EFI_VARIABLE_AUTHORITY': {
      const nameLen = Number(d.readBigUInt64LE(16));
      const dataLen = Number(d.readBigUInt64LE(24));
      const name = utf16(d.subarray(32, 32 + nameLen * 2));
      const value = d.subarray(32 + nameLen * 2, 32 + nameLen * 2 + dataLen);
      let what = `${dataLen} bytes of data`;
      if (/^Boot[0-9A-F]{4}$/.test(name) && value.length >= 6) {
        // EFI_LOAD_OPTION: attributes u32, FilePathListLength u16, Description (UTF-16, NUL-terminated), FilePathList
        const pathLen = value.readUInt16LE(4);
        let end = 6;
        while (end + 1 < value.length && value.readUInt16LE(end) !== 0) end += 2;
        const path = describeDevicePath(value.subarray(end + 2, end + 2 + pathLen));
        what = `boot option ${JSON.stringify(utf16(value.subarray(6, end)))} ${path}`;
      } else if (dataLen > 0 && dataLen <= 8) {
        what = `value ${value.toString('hex')}`;
      }
      return `EFI variable ${name} (${guid(d.subarray(0, 16))}), ${what}`;
    }
    case 'EV_EFI_BOOT_SERVICES_APPLICATION':
    case 'EV_EFI_BOOT_SERVICES_DRIVER':
    case 'EV_EFI_RUNTIME_SERVICES_DRIVER': {
      const length = d.readBigUInt64LE(8);
      const pathLen = Number(d.readBigUInt64LE(24));
      const path = describeDevicePath(d.subarray(32, 32 + pathLen));
      return `EFI image ${path || '(no device path)'}, ${length} bytes`;
    }
    case 'EV_EVENT_TAG': {
      const id = d.readUInt32LE(0);
      const size = d.readUInt32LE(4);
      const body = d.subarray(8, 8 + size);
      return `tagged event ${hex(id)}: ${printable(body) ?? `${body.length} bytes`}`;
    }
    case 'EV_EFI_HANDOFF_TABLES':
      return `${Number(d.readBigUInt64LE(0))} EFI configuration table(s)`;
    case 'EV_EFI_GPT_EVENT':
      return `GPT partition table (disk ${guid(d.subarray(56, 72))})`;
    default:
      return printable(d) ?? `${d.length} bytes of event data`;
  }
}
