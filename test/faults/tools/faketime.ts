// libfaketime for one child process: the clock skew a node's RTC or NTP can leave it with, applied through the
// environment (LD_PRELOAD) so any spawn site (the agent harness, a tool) can use it without a wrapper command.
import { existsSync } from 'node:fs';

const CANDIDATES = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
];

/** The environment that makes a child's wall clock run `offset` (libfaketime syntax: "+2h", "-2h") off. */
export function skewedClockEnv(offset: string): NodeJS.ProcessEnv {
  const lib = CANDIDATES.find((p) => existsSync(p));
  if (!lib) throw new Error('libfaketime not found: install Debian "faketime" (scripts/install-deps.sh)');
  return {
    LD_PRELOAD: lib,
    FAKETIME: offset,
    // Timers and timeouts run on the monotonic clock: only the wall clock (dates, certificate checks) is skewed.
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
  };
}
