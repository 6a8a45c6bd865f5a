// Named points where the fault tests kill the agent outright (SIGKILL: no handler, no cleanup), to prove that what
// the agent persisted up to that point is enough to recover. Set SEXTANT_FAULT_KILL_AT=<point> in the agent's
// environment; unset (always, outside tests) this does nothing.
export function faultPoint(name: string): void {
  if (process.env.SEXTANT_FAULT_KILL_AT === name) process.kill(process.pid, 'SIGKILL');
}
