import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { discoverAll } from '../../../agent/discovery/discover.js';
import { type EndpointSource, endpointKey, parseJoinEndpoint } from '../../../agent/discovery/endpoint.js';
import { metadataSource } from '../../../agent/discovery/metadata.js';
import { staticSource } from '../../../agent/discovery/static.js';
import { createLogger } from '../../../agent/log/index.js';

describe('staticSource', () => {
  it('parses host:port, IPv4:port and [v6]:port', async () => {
    const source = staticSource([
      'cp-0.cluster.local:30090',
      '10.213.0.11:30090',
      '[fd00::1]:9000',
      ' host:1 ',
    ]);
    assert.equal(source.name, 'static');
    assert.deepEqual(await source.discover(), [
      { host: 'cp-0.cluster.local', port: 30090, source: 'static' },
      { host: '10.213.0.11', port: 30090, source: 'static' },
      { host: 'fd00::1', port: 9000, source: 'static' },
      { host: 'host', port: 1, source: 'static' },
    ]);
  });

  it('refuses every malformed entry at construction, naming it and what was expected', () => {
    const cases: [string, RegExp][] = [
      ['10.0.0.1', /missing ":port"/],
      ['10.0.0.1:0', /port must be 1-65535/],
      ['10.0.0.1:70000', /port must be 1-65535/],
      ['10.0.0.1:80x', /port must be 1-65535/],
      ['10.0.0.1:', /port must be 1-65535/],
      [':30090', /empty host/],
      ['300.1.1.1:80', /neither an IP address nor a host name/],
      ['bad host:80', /neither an IP address nor a host name/],
      ['-bad:80', /neither an IP address nor a host name/],
      ['a..b:80', /neither an IP address nor a host name/],
      ['fd00::1:80', /IPv6 address needs \[ \]/],
      ['[fd00::1', /missing "]"/],
      ['[fd00::1]80', /expected ":port"/],
      ['[10.0.0.1]:80', /IPv6 address inside \[ \]/],
    ];
    for (const [entry, why] of cases) {
      assert.throws(
        () => staticSource(['ok:1', entry]),
        (err: Error) => err.message.includes(JSON.stringify(entry)) && why.test(err.message),
        `entry ${entry}`,
      );
    }
    assert.throws(() => staticSource('a:1' as never), /list/);
    assert.throws(() => parseJoinEndpoint(5 as never, 'static'), /expected a string/);
  });

  it('stops when aborted', async () => {
    await assert.rejects(staticSource(['a:1']).discover(AbortSignal.abort(new Error('stop'))), /stop/);
  });
});

describe('metadataSource', () => {
  it('reads the endpoints from metadata on every discovery', async () => {
    let list = ['10.0.0.1:30090'];
    const source = metadataSource(async () => ({ joinEndpoints: list }));
    assert.deepEqual(await source.discover(), [{ host: '10.0.0.1', port: 30090, source: 'metadata' }]);
    list = ['10.0.0.2:30090'];
    assert.deepEqual(
      (await source.discover()).map((e) => e.host),
      ['10.0.0.2'],
    );
    assert.deepEqual(await metadataSource(async () => ({})).discover(), []);
  });

  it('fails with the bad entry named, or when metadata cannot be read', async () => {
    await assert.rejects(
      metadataSource(async () => ({ joinEndpoints: ['x'] })).discover(),
      /metadata join endpoint "x"/,
    );
    await assert.rejects(
      metadataSource(async () => ({ joinEndpoints: 'a:1' as never })).discover(),
      /must be a list/,
    );
    await assert.rejects(
      metadataSource(async () => {
        throw new Error('metadata server 169.254.169.254 unreachable');
      }).discover(),
      /unreachable/,
    );
  });
});

describe('discoverAll', () => {
  const failing = (name: string, message: string): EndpointSource => ({
    name,
    async discover() {
      throw new Error(message);
    },
  });

  it('runs every source; one failing never stops the others, and why it failed is logged', async () => {
    const log = createLogger({ sink: 'memory', level: 'debug' });
    const throwsSync: EndpointSource = {
      name: 'sync-thrower',
      discover() {
        throw new Error('exploded synchronously');
      },
    };
    const endpoints = await discoverAll(
      [
        failing('metadata', 'metadata server unreachable'),
        throwsSync,
        staticSource(['10.0.0.1:30090', '10.0.0.2:30090']),
        {
          name: 'mdns',
          async discover() {
            return [
              { host: '10.0.0.2', port: 30090, source: 'mdns' as const },
              { host: '10.0.0.3', port: 30090, source: 'mdns' as const },
            ];
          },
        },
      ],
      log,
    );
    assert.deepEqual(endpoints, [
      { host: '10.0.0.1', port: 30090, source: 'static' },
      { host: '10.0.0.2', port: 30090, source: 'static' },
      { host: '10.0.0.3', port: 30090, source: 'mdns' },
    ]);
    const warnings = log
      .recent()
      .map((l) => JSON.parse(l) as Record<string, string>)
      .filter((l) => l.level === 'warning');
    assert.deepEqual(
      warnings.map((w) => [w.source, w.reason]),
      [
        ['metadata', 'metadata server unreachable'],
        ['sync-thrower', 'exploded synchronously'],
      ],
    );
  });

  it('says so when no endpoint was found, and rejects when aborted', async () => {
    const log = createLogger({ sink: 'memory' });
    assert.deepEqual(await discoverAll([failing('mdns', 'no multicast route')], log), []);
    assert.match(log.recent().join('\n'), /no join endpoint found/);
    const controller = new AbortController();
    const slow: EndpointSource = {
      name: 'slow',
      discover: (signal) =>
        new Promise((_, reject) =>
          signal?.addEventListener('abort', () => reject(signal.reason), { once: true }),
        ),
    };
    const p = discoverAll([slow, staticSource(['a:1'])], log, controller.signal);
    controller.abort(new Error('join client stopping'));
    await assert.rejects(p, /join client stopping/);
    await assert.rejects(discoverAll([], log, controller.signal), /join client stopping/);
  });

  it('dedupes IPv6 and host names case-insensitively', () => {
    assert.equal(endpointKey({ host: 'FD00::1', port: 1 }), '[fd00::1]:1');
    assert.equal(endpointKey({ host: 'CP.local', port: 2 }), 'cp.local:2');
  });
});
