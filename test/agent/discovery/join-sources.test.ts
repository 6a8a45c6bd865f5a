import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { discoverAll } from '../../../agent/discovery/discover.js';
import { joinServiceSources } from '../../../agent/discovery/join-sources.js';
import { recordingLog } from '../../harness/recording-log.js';

describe('joinServiceSources', () => {
  it('reads the metadata anew on every discovery, so a control plane added later is found', async () => {
    let reads = 0;
    const lists = [[], ['10.0.0.1:30090'], ['10.0.0.1:30090', '10.0.0.2:30090']];
    const sources = joinServiceSources({
      metadata: async () => ({ joinEndpoints: lists[Math.min(reads++, lists.length - 1)] }),
      staticEndpoints: [],
      mdns: false,
    });
    const log = recordingLog();
    const found = [];
    for (let i = 0; i < 3; i++)
      found.push((await discoverAll(sources, log)).map((e) => `${e.host}:${e.port}`));
    assert.equal(reads, 3);
    assert.deepEqual(found, [[], ['10.0.0.1:30090'], ['10.0.0.1:30090', '10.0.0.2:30090']]);
  });

  it('keeps discovering from the other sources while the metadata cannot be read', async () => {
    const sources = joinServiceSources({
      metadata: async () => {
        throw new Error('instance metadata file:///x: cannot read: ENOENT');
      },
      staticEndpoints: ['10.0.0.9:30090'],
      mdns: false,
    });
    const log = recordingLog();
    const found = await discoverAll(sources, log);
    assert.deepEqual(
      found.map((e) => `${e.host}:${e.port}`),
      ['10.0.0.9:30090'],
    );
    assert.ok(log.lines.some((l) => /source failed .*cannot read: ENOENT/.test(l)));
  });

  const shapes: { name: string; staticEndpoints: string[]; mdns: boolean; names: string[] }[] = [
    { name: 'metadata only', staticEndpoints: [], mdns: false, names: ['metadata'] },
    {
      name: 'metadata and a static list',
      staticEndpoints: ['a:1'],
      mdns: false,
      names: ['metadata', 'static'],
    },
    { name: 'metadata and mDNS', staticEndpoints: [], mdns: true, names: ['metadata', 'mdns'] },
    {
      name: 'all three, in that order',
      staticEndpoints: ['a:1'],
      mdns: true,
      names: ['metadata', 'static', 'mdns'],
    },
  ];
  for (const s of shapes) {
    it(s.name, () => {
      const sources = joinServiceSources({
        metadata: async () => ({}),
        staticEndpoints: s.staticEndpoints,
        mdns: s.mdns,
      });
      assert.deepEqual(
        sources.map((x) => x.name),
        s.names,
      );
    });
  }

  it('refuses a malformed static entry when the sources are made, naming it', () => {
    assert.throws(
      () => joinServiceSources({ metadata: async () => ({}), staticEndpoints: ['nope'], mdns: false }),
      /nope/,
    );
  });
});
