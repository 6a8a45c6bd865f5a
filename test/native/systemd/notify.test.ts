import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { notify } from '../../../native/systemd/notify.js';
import { type DgramReader, startDgramReader } from './fake-socket.js';

describe('notify (sd_notify)', () => {
  let reader: DgramReader;
  const saved = process.env.NOTIFY_SOCKET;
  before(async () => {
    reader = await startDgramReader();
  });
  after(async () => {
    if (saved === undefined) delete process.env.NOTIFY_SOCKET;
    else process.env.NOTIFY_SOCKET = saved;
    await reader.stop();
  });

  it('sends READY, STATUS, WATCHDOG and STOPPING to $NOTIFY_SOCKET as single datagrams', async () => {
    process.env.NOTIFY_SOCKET = reader.path;
    const states = ['READY=1', 'STATUS=waiting for init or join', 'WATCHDOG=1', 'STOPPING=1'];
    for (const state of states) assert.ok(notify(state) > 0, `sd_notify(${state}) was not sent`);
    const got = await reader.waitFor(states.length);
    assert.deepEqual(
      got.map((d) => d.toString('utf8')),
      states,
    );
  });

  it('is a silent no-op (rc 0) without NOTIFY_SOCKET', () => {
    delete process.env.NOTIFY_SOCKET;
    assert.equal(notify('READY=1'), 0);
  });

  it('returns a negative errno when the socket is gone', () => {
    process.env.NOTIFY_SOCKET = `${reader.dir}/missing`;
    assert.ok(notify('READY=1') < 0);
  });
});
