import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file.js';

/** Who was admitted with which state disk: the only disk a rejoin may ask a key for. */
export interface Admission {
  nodeName: string;
  diskUuid: string;
  ekCertificateHash: string;
  controlPlane: boolean;
  admittedAt: string;
}

/** Admissions keyed by AK name (hex). Persisted 0600 so a restarted JoinService still knows its nodes. */
export class AdmissionRegistry {
  readonly #byAk = new Map<string, Admission>();
  #queue: Promise<void> = Promise.resolve();

  private constructor(readonly path: string) {}

  static async open(dir: string): Promise<AdmissionRegistry> {
    const reg = new AdmissionRegistry(join(dir, 'admissions.json'));
    try {
      const raw = JSON.parse(await readFile(reg.path, 'utf8')) as Record<string, Admission>;
      for (const [ak, a] of Object.entries(raw)) reg.#byAk.set(ak, a);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`${reg.path}: ${(err as Error).message}`);
    }
    return reg;
  }

  get(akNameHex: string): Admission | undefined {
    return this.#byAk.get(akNameHex);
  }

  record(akNameHex: string, admission: Admission): Promise<void> {
    this.#byAk.set(akNameHex, admission);
    const snapshot = JSON.stringify(Object.fromEntries(this.#byAk));
    const run = this.#queue.then(() => writeFileAtomic(this.path, snapshot, { mode: 0o600 }));
    this.#queue = run.catch(() => {});
    return run;
  }
}
