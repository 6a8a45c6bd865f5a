// The one path every attested JoinService request takes: verify (spend the connection's challenge, check the
// document) → identify (the EK, named by the operator's inventory or the admission registry) → authorize (the
// registry's rules, PCR 15) → audit. Nothing is handed out before `admit` resolves, so a decision always reaches the
// audit log before the caller records or grants anything; how an audit failure counts is one table per request kind.
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { PendingChallenge, VerifiedAttestation } from '../../attestation/atls/index.js';
import type { AttestationDocument } from '../../gen/proto/attestation.js';
import type { Logger } from '../log/index.js';
import type { AdmissionRegistry } from './admissions.js';
import type { AuditLog } from './audit-log.js';
import {
  authorizeJoin,
  authorizeReturn,
  type Inventory,
  identify,
  type NodeIdentity,
  Refusal,
  type UnlistedPolicy,
} from './authorization.js';

export type RequestKind = 'join' | 'rejoin' | 'confirm';

/**
 * What an admission does when its audit record cannot be written: `refuse` (nothing is handed out unrecorded) or
 * `proceed` (the request only takes something away, and refusing it would keep what it takes alive).
 */
export type AuditFailurePolicy = 'refuse' | 'proceed';

export const AUDIT_FAILURE: Readonly<Record<RequestKind, AuditFailurePolicy>> = {
  // a ticket: a bootstrap token, a disk key, for a control plane the cluster secrets
  join: 'refuse',
  // a disk key
  rejoin: 'refuse',
  // confirms the admission and deletes the join token: refusing it would leave the token usable
  confirm: 'proceed',
};

export interface AdmissionDeps {
  log: Logger;
  audit: Pick<AuditLog, 'append' | 'countRefusal'>;
  admissions: AdmissionRegistry;
  inventory(): Promise<Inventory>;
  unlisted: UnlistedPolicy;
  /** PCR 15 of a node that holds this cluster's lock. */
  clusterPcr: Buffer;
  /** Takes (and so spends) the challenge issued on this connection; undefined when none is outstanding. */
  takeChallenge(peer: string): PendingChallenge | undefined;
  /** Verifies a document against its challenge, within the process's verification bound. */
  verify(pending: PendingChallenge, doc: AttestationDocument): Promise<VerifiedAttestation>;
}

export interface AdmissionRequest {
  kind: RequestKind;
  peer: string;
  attestation: AttestationDocument | undefined;
  diskUuid: string;
}

export interface Admitted<T> {
  verified: VerifiedAttestation;
  who: NodeIdentity;
  /** What `prepare` made ready before the decision was audited. */
  prepared: T;
}

export interface AdmissionPlan<T> {
  /** The audit record's reason for an admitted request. */
  reason(who: NodeIdentity): string;
  /** What must be ready before the decision is audited (a ticket's token); its Refusal refuses the request. */
  prepare(who: NodeIdentity): Promise<T>;
}

/**
 * Admits one request, or throws the Refusal it was refused with (after auditing it). Refusals before any document
 * was checked (no attestation, no challenge) are counted, not written one record each: anyone can cause them.
 */
export async function admit<T>(
  deps: AdmissionDeps,
  req: AdmissionRequest,
  plan: AdmissionPlan<T>,
): Promise<Admitted<T>> {
  const { kind, peer } = req;
  const pending = deps.takeChallenge(peer);
  const early = (reason: string, code: grpc.status): never => {
    deps.audit.countRefusal(reason);
    deps.log.warn(`${kind} refused for ${peer}: ${reason}`, { peer });
    throw new Refusal(code, reason);
  };
  if (!req.attestation) return early('attestation: required', grpc.status.INVALID_ARGUMENT);
  if (!pending) {
    return early(
      'no outstanding challenge on this connection (call Challenge first)',
      grpc.status.FAILED_PRECONDITION,
    );
  }
  let verified: VerifiedAttestation;
  try {
    verified = await deps.verify(pending, req.attestation);
  } catch (err) {
    if (err instanceof Refusal) throw err;
    return refuse(deps, req, '', null, new Refusal(grpc.status.PERMISSION_DENIED, (err as Error).message));
  }
  const presented = verified.ekPublicHash.toString('hex');
  const inventory = await deps.inventory();
  const pcr15 = verified.pcrs.get(15) ?? Buffer.alloc(0);
  let refusedName = '';
  let who: NodeIdentity;
  try {
    if (kind === 'join') {
      who = identify(presented, inventory, deps.unlisted);
      refusedName = who.nodeName;
      authorizeJoin({ ek: who.ek, pcr15, diskUuid: req.diskUuid }, who, deps.admissions);
    } else {
      // a node coming back is known by its admission, recorded under the inventory's first EK of its TPM
      const listed = inventory.byEk(presented);
      const ek = listed?.eks[0] ?? presented;
      refusedName = deps.admissions.get(ek)?.nodeName ?? '';
      const claim = { ek, pcr15, diskUuid: req.diskUuid };
      const own = authorizeReturn(kind, claim, deps.clusterPcr, deps.admissions);
      who = { ek, nodeName: own.nodeName, role: own.role, listed: listed !== undefined };
    }
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    return refuse(deps, req, refusedName, verified, err);
  }
  const prepared = await plan.prepare(who);
  await record(deps, req, who.nodeName, verified, 'admitted', plan.reason(who)).catch((err: Error) => {
    if (AUDIT_FAILURE[kind] === 'refuse') {
      throw new Refusal(grpc.status.UNAVAILABLE, `audit log unavailable: ${err.message}`);
    }
    deps.log.error(`audit log: ${err.message}`);
  });
  return { verified, who, prepared };
}

/** Audits and logs a refusal, then throws it; the refusal stands whether or not its record could be written. */
async function refuse(
  deps: AdmissionDeps,
  req: AdmissionRequest,
  nodeName: string,
  verified: VerifiedAttestation | null,
  refusal: Refusal,
): Promise<never> {
  await record(deps, req, nodeName, verified, 'refused', refusal.message).catch((err: Error) =>
    deps.log.error(`audit log: ${err.message}`),
  );
  deps.log.warn(`${req.kind} refused for ${nodeName || req.peer}: ${refusal.message}`, {
    peer: req.peer,
    ...(nodeName ? { node: nodeName } : {}),
  });
  throw refusal;
}

function record(
  deps: AdmissionDeps,
  req: AdmissionRequest,
  nodeName: string,
  verified: VerifiedAttestation | null,
  verdict: 'admitted' | 'refused',
  reason: string,
): Promise<void> {
  const pcrDigest = verified
    ? createHash('sha256')
        .update(Buffer.concat([...verified.pcrs.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v)))
        .digest('hex')
    : '';
  return deps.audit.append({
    peer: req.peer,
    nodeName,
    akName: verified?.akName.toString('hex') ?? '',
    ekCertificateHash: verified?.ekCertificateHash.toString('hex') ?? '',
    // The audit record's request kinds are join and rejoin; a confirmation is the join's epilogue.
    request: req.kind === 'rejoin' ? 'rejoin' : 'join',
    verdict,
    reason: `${verified ? `EK ${verified.ekPublicHash.toString('hex')}: ` : ''}${reason}`,
    pcrDigest,
  });
}
