// Service manager notifications (Type=notify units) through libsystemd's sd_notify.
import { loadSystemd } from './library.js';

/**
 * Sends a state string such as "READY=1", "STATUS=joining", "WATCHDOG=1" or "STOPPING=1" (several may be joined
 * with newlines) to $NOTIFY_SOCKET. Returns sd_notify's rc: positive when sent, 0 when there is nothing to notify
 * (no NOTIFY_SOCKET, or libsystemd missing: no service manager is waiting), negative errno on failure.
 */
export function notify(state: string): number {
  const lib = loadSystemd();
  if (!lib.ok) return 0;
  return lib.lib.sdNotify(0, state);
}
