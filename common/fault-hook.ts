// Named points where the fault tests kill a process outright (SIGKILL: no handler, no cleanup), to prove that what
// it persisted up to that point is enough to recover. Set SEXTANT_FAULT_KILL_AT=<point> in the process's
// environment; unset (always, outside tests) this does nothing.
export function faultPoint(name: string): void {
  if (process.env.SEXTANT_FAULT_KILL_AT === name) process.kill(process.pid, 'SIGKILL');
}
