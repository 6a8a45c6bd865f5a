// What an operator is told when the address they gave holds no Sextant agent: a wrong port, a host that is down, or
// some other server. The raw OpenSSL/gRPC text says how the bytes failed, not what to do.
import { AttestedChannelError } from '../../attestation/atls/index.js';
import { formatEndpoint } from '../../common/net.js';

const SOCKET_REASONS: Record<string, string> = {
  ECONNREFUSED: 'nothing listens on that port',
  ECONNRESET: 'it closed the connection during the TLS handshake',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name does not resolve',
  ETIMEDOUT: 'the connection timed out',
};

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * "no Sextant agent at <addr> (<why>; …)" when the channel failed before any attestation was exchanged (stage
 * connect or identify); undefined for a node that answered and was refused, whose own message says why.
 */
export function noAgentMessage(err: unknown, initPort: number): string | undefined {
  if (!(err instanceof AttestedChannelError)) return undefined;
  let why: string;
  if (err.stage === 'connect') {
    const code = codeOf(err.cause);
    if (code !== undefined && SOCKET_REASONS[code]) why = SOCKET_REASONS[code];
    else if (/no TLS handshake within/.test(err.message)) why = 'no TLS handshake in time';
    else if (/no certificate/.test(err.message)) why = 'it sent no TLS certificate';
    else why = 'it does not speak TLS 1.3';
  } else if (err.stage === 'identify') {
    why = "it speaks TLS but not the agent's attestation service";
  } else {
    return undefined;
  }
  return `no Sextant agent at ${formatEndpoint(err.endpoint)} (${why}; the agent listens on initPort ${initPort} of each node)`;
}
