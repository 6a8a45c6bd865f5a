import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file.js';
import type { NodeRole } from '../../common/contracts/node-role.js';

/**
 * One node the JoinService admitted, keyed by its EK (SHA-256 of the EK public key): the name and the state disk
 * registered to that TPM. `pending` until the node confirmed it joined (ConfirmJoin, or a rejoin); a pending
 * admission may be replaced by the same EK (a node that rebooted before it finished), a confirmed one may not.
 */
export interface Admission {
  ek: string;
  nodeName: string;
  diskUuid: string;
  role: NodeRole;
  state: 'pending' | 'confirmed';
  /** AK name and EK certificate hash the node attested with when admitted: for the audit trail only */
  akName: string;
  ekCertificateHash: string;
  admittedAt: string;
  confirmedAt?: string;
}

const FORMAT = 2;

/** The registry's file in the JoinService's directory. */
export const ADMISSIONS_FILE = 'admissions.json';

/**
 * Admissions keyed by EK, with the names and disks they hold: one name and one disk per EK, and neither held by two
 * EKs. Persisted 0600 so a restarted JoinService still knows its nodes; every change is written before it counts.
 */
export class AdmissionRegistry {
  readonly #byEk = new Map<string, Admission>();
  #queue: Promise<void> = Promise.resolve();

  private constructor(readonly path: string) {}

  static async open(dir: string): Promise<AdmissionRegistry> {
    const reg = new AdmissionRegistry(join(dir, ADMISSIONS_FILE));
    let text: string;
    try {
      text = await readFile(reg.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return reg;
      throw new Error(`${reg.path}: ${(err as Error).message}`);
    }
    let raw: { format?: unknown; admissions?: Record<string, Admission> };
    try {
      raw = JSON.parse(text) as typeof raw;
    } catch (err) {
      throw new Error(`${reg.path}: not valid JSON (${(err as Error).message})`);
    }
    if (raw.format !== FORMAT || typeof raw.admissions !== 'object' || raw.admissions === null) {
      // An older registry was keyed by AK: its records cannot say which EK holds which disk. Refused, not guessed.
      throw new Error(
        `${reg.path}: not an admission registry of format ${FORMAT} (keyed by EK); move it aside to start a new one`,
      );
    }
    for (const [ek, a] of Object.entries(raw.admissions)) reg.#byEk.set(ek, { ...a, ek });
    return reg;
  }

  /** The admission of this EK, if any. */
  get(ek: string): Admission | undefined {
    return this.#byEk.get(ek);
  }

  /** The admission (of any EK) that holds this node name. */
  holderOfName(nodeName: string): Admission | undefined {
    for (const a of this.#byEk.values()) if (a.nodeName === nodeName) return a;
    return undefined;
  }

  /** The admission (of any EK) that holds this state disk. */
  holderOfDisk(diskUuid: string): Admission | undefined {
    for (const a of this.#byEk.values()) if (a.diskUuid === diskUuid) return a;
    return undefined;
  }

  /**
   * Records (or replaces) the admission of `admission.ek`; resolves once it is on disk. When the write fails the
   * previous admission is back in place: nothing counts that is not persisted.
   */
  record(admission: Admission): Promise<void> {
    return this.#change(admission.ek, admission);
  }

  /** Marks this EK's admission confirmed; false when there is none. */
  async confirm(ek: string, at = new Date()): Promise<boolean> {
    const a = this.#byEk.get(ek);
    if (!a) return false;
    if (a.state === 'confirmed') return true;
    await this.#change(ek, { ...a, state: 'confirmed', confirmedAt: at.toISOString() });
    return true;
  }

  async #change(ek: string, next: Admission): Promise<void> {
    const before = this.#byEk.get(ek);
    this.#byEk.set(ek, next);
    try {
      await this.#persist();
    } catch (err) {
      if (this.#byEk.get(ek) === next) {
        if (before) this.#byEk.set(ek, before);
        else this.#byEk.delete(ek);
      }
      throw err;
    }
  }

  all(): Admission[] {
    return [...this.#byEk.values()];
  }

  #persist(): Promise<void> {
    const snapshot = JSON.stringify({ format: FORMAT, admissions: Object.fromEntries(this.#byEk) });
    const run = this.#queue.then(() => writeFileAtomic(this.path, snapshot, { mode: 0o600 }));
    this.#queue = run.catch(() => {});
    return run;
  }
}
