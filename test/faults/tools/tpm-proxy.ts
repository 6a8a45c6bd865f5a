// A TCP proxy between the swtpm TCTI and swtpm that can drop or stall single TPM commands: the I/O faults a vTPM
// behind a flaky host channel produces. It speaks the raw command stream tcti-swtpm uses (a TPM command header
// carries its own size), forwards the control channel (port + 1) untouched, and applies one armed fault to the
// next command that matches.

import { connect, createServer, type Server, type Socket } from 'node:net';
import { pairPortCandidate } from '../../harness/ports.js';

export type TpmFault =
  /** Closes the connection when the command arrives: the TPM never sees it. */
  | 'drop-command'
  /** Lets the TPM run the command, then closes the connection instead of returning the response. */
  | 'drop-response'
  /** Holds the response back for `stallMs` (forever when absent). */
  | 'stall';

export interface ArmedFault {
  fault: TpmFault;
  /** Only a command with this command code (e.g. 0x158 Quote); any command when absent. */
  commandCode?: number;
  stallMs?: number;
}

export interface TpmProxy {
  tcti: string;
  port: number;
  /** Arms one fault for the next matching command; resolves once it was applied. */
  arm(fault: ArmedFault): Promise<void>;
  /**
   * From now on drops each command with probability `rate` (0 turns it off), as `faults` picks at random: a lossy
   * host channel rather than one aimed fault. `random` makes a run repeatable.
   */
  setLoss(rate: number, faults?: readonly ('drop-command' | 'drop-response')[], random?: () => number): void;
  /** Commands the lossy mode dropped so far. */
  readonly dropped: number;
  /** Every command code the proxy saw, in order. */
  readonly commands: number[];
  /** Connections the TCTI opened (a reopened context shows as a new one). */
  readonly connections: number;
  close(): Promise<void>;
}

export const TPM_CC = {
  Quote: 0x158,
  PCR_Read: 0x17e,
  ActivateCredential: 0x147,
  CreatePrimary: 0x131,
  GetRandom: 0x17b,
  PCR_Extend: 0x182,
  NV_ReadPublic: 0x169,
  NV_Read: 0x14e,
  ReadPublic: 0x173,
  PolicySecret: 0x151,
} as const;

/** A small seeded generator (mulberry32), so a lossy run can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function listen(server: Server, port: number): Promise<boolean> {
  return new Promise((res) => {
    server.once('error', () => res(false));
    server.listen(port, '127.0.0.1', () => res(true));
  });
}

async function listenPair(): Promise<[Server, Server, number]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const { port } = pairPortCandidate();
    const data = createServer();
    if (!(await listen(data, port))) continue;
    const ctrl = createServer();
    if (await listen(ctrl, port + 1)) return [data, ctrl, port];
    data.close();
  }
  throw new Error(`tpm-proxy: no free adjacent port pair in ${pairPortCandidate().range}`);
}

/** Starts a proxy in front of the swtpm whose data port is `upstreamPort` (control at upstreamPort + 1). */
export async function startTpmProxy(upstreamPort: number): Promise<TpmProxy> {
  const [data, ctrl, port] = await listenPair();
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  let armed: (ArmedFault & { applied: () => void }) | undefined;
  const commands: number[] = [];
  let connections = 0;
  let loss = { rate: 0, faults: ['drop-command'] as readonly TpmFault[], random: Math.random };
  let dropped = 0;

  ctrl.on('connection', (client) => {
    track(client);
    const up = connect(upstreamPort + 1, '127.0.0.1');
    track(up);
    client.pipe(up);
    up.pipe(client);
    client.once('close', () => up.destroy());
    up.once('close', () => client.destroy());
  });

  data.on('connection', (client) => {
    connections += 1;
    track(client);
    const up = connect(upstreamPort, '127.0.0.1');
    track(up);
    client.once('close', () => up.destroy());
    up.once('close', () => client.destroy());
    let pending = Buffer.alloc(0);
    let current: ArmedFault | undefined;
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 10) {
        const size = pending.readUInt32BE(2);
        if (size < 10 || pending.length < size) break;
        const command = pending.subarray(0, size);
        pending = pending.subarray(size);
        const cc = command.readUInt32BE(6);
        commands.push(cc);
        if (armed && (armed.commandCode === undefined || armed.commandCode === cc)) {
          const fault = armed;
          armed = undefined;
          fault.applied();
          if (fault.fault === 'drop-command') {
            client.destroy();
            return;
          }
          current = fault;
        } else if (loss.rate > 0 && loss.random() < loss.rate) {
          dropped += 1;
          const fault = loss.faults[Math.floor(loss.random() * loss.faults.length)];
          if (fault === 'drop-command') {
            client.destroy();
            return;
          }
          current = { fault: fault ?? 'drop-command' };
        }
        up.write(command);
      }
    });
    let responses = Buffer.alloc(0);
    up.on('data', (chunk: Buffer) => {
      responses = Buffer.concat([responses, chunk]);
      while (responses.length >= 10) {
        const size = responses.readUInt32BE(2);
        if (size < 10 || responses.length < size) break;
        const response = responses.subarray(0, size);
        responses = responses.subarray(size);
        const fault = current;
        current = undefined;
        if (fault?.fault === 'drop-response') {
          client.destroy();
          return;
        }
        if (fault?.fault === 'stall') {
          if (fault.stallMs !== undefined) setTimeout(() => client.write(response), fault.stallMs);
        } else {
          client.write(response);
        }
      }
    });
  });

  return {
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    port,
    commands,
    get connections() {
      return connections;
    },
    get dropped() {
      return dropped;
    },
    setLoss(rate, faults = ['drop-command', 'drop-response'], random = Math.random) {
      loss = { rate, faults, random };
    },
    arm(fault) {
      return new Promise<void>((applied) => {
        armed = { ...fault, applied };
      });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((r) => data.close(() => r())),
        new Promise<void>((r) => ctrl.close(() => r())),
      ]);
    },
  };
}
