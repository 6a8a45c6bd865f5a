import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cidrProblem,
  cidrsOverlap,
  endpointProblem,
  formatEndpoint,
  isDnsLabel,
  isDnsSubdomain,
  isHostName,
  isIp,
  isPort,
  isSan,
  NetFormatError,
  parseCidr,
  parseEndpoint,
} from '../../common/net.js';

describe('common/net', () => {
  it('parses endpoints: IPv4, names, bracketed IPv6, default port; hosts come back lowercase', () => {
    const cases: [string, number | undefined, { host: string; port: number }][] = [
      ['10.0.0.1:9000', undefined, { host: '10.0.0.1', port: 9000 }],
      ['CP-0.Example.test:1', undefined, { host: 'cp-0.example.test', port: 1 }],
      ['[FD00::1]:65535', undefined, { host: 'fd00::1', port: 65535 }],
      ['[fd00::1]', 9000, { host: 'fd00::1', port: 9000 }],
      ['node-1', 9000, { host: 'node-1', port: 9000 }],
      ['[::ffff:10.0.0.1]:5', undefined, { host: '::ffff:10.0.0.1', port: 5 }],
    ];
    for (const [text, port, want] of cases) assert.deepEqual(parseEndpoint(text, port), want, text);
  });

  it('refuses malformed endpoints with the reason', () => {
    const cases: [string, number | undefined, RegExp][] = [
      ['10.0.0.1', undefined, /missing ":port"/],
      ['fd00::1:9000', undefined, /IPv6 address needs \[ \]/],
      ['a:b:c', undefined, /IPv6 address needs \[ \]/],
      ['[10.0.0.1]:9', undefined, /IPv6 address inside \[ \]/],
      ['[fd00::1]9', undefined, /":port" after "\]"/],
      ['[fd00::1', undefined, /missing "\]"/],
      [':9000', undefined, /empty host/],
      ['a..b:1', undefined, /neither an IP address nor a host name/],
      ['under_score:1', undefined, /neither/],
      ['010.0.0.1:1', undefined, /neither/],
      ['10.0.0.300:1', undefined, /neither/],
      ['-a:1', undefined, /neither/],
      ['h:0', undefined, /port must be 1-65535/],
      ['h:65536', undefined, /port must be 1-65535/],
      ['h:09', undefined, /port must be 1-65535/],
      ['h:', undefined, /port must be 1-65535/],
    ];
    for (const [text, port, why] of cases) {
      assert.throws(
        () => parseEndpoint(text, port),
        (err: Error) => err instanceof NetFormatError && why.test(err.message),
        text,
      );
      assert.match(endpointProblem(text, port) ?? '', why, text);
    }
    assert.throws(() => parseEndpoint(5 as never), /expected a string/);
    assert.equal(endpointProblem('h:1'), undefined);
  });

  it('formats endpoints with brackets around IPv6 only, and round-trips', () => {
    assert.equal(formatEndpoint({ host: 'fd00::1', port: 9 }), '[fd00::1]:9');
    assert.equal(formatEndpoint({ host: '10.0.0.1', port: 9 }), '10.0.0.1:9');
    for (const text of ['[fd00::1]:9', 'a.b:7', '192.168.0.1:30090'])
      assert.equal(formatEndpoint(parseEndpoint(text)), text);
  });

  it('parses CIDRs; refuses host bits (with the network meant), prefixes out of range, zone IDs', () => {
    assert.deepEqual(parseCidr('10.96.0.0/12'), { family: 4, base: 0x0a600000n, prefix: 12 });
    assert.equal(parseCidr('fd00::/8').family, 6);
    assert.equal(parseCidr('0.0.0.0/0').prefix, 0);
    const bad: [string, RegExp][] = [
      ['10.96.0.1/12', /host bits are set \(did you mean 10\.96\.0\.0\/12\?\)/],
      ['fd00::1/64', /did you mean fd00:0:0:0:0:0:0:0\/64/],
      ['10.0.0.0/33', /prefix must be 0-32/],
      ['fd00::/129', /prefix must be 0-128/],
      ['10.0.0.0/08', /prefix must be 0-32/],
      ['10.0.0.0', /missing "\/prefix"/],
      ['fe80::%eth0/64', /not an IP address/],
      ['010.0.0.0/8', /not an IP address/],
    ];
    for (const [text, why] of bad) {
      assert.throws(() => parseCidr(text), why, text);
      assert.match(cidrProblem(text) ?? '', why, text);
    }
    assert.equal(cidrProblem('10.244.0.0/16'), undefined);
  });

  it('tells overlapping CIDRs of the same family', () => {
    const c = (s: string) => parseCidr(s);
    assert.equal(cidrsOverlap(c('10.96.0.0/12'), c('10.100.0.0/16')), true);
    assert.equal(cidrsOverlap(c('10.96.0.0/12'), c('10.244.0.0/16')), false);
    assert.equal(cidrsOverlap(c('10.0.0.0/8'), c('fd00::/8')), false);
  });

  it('checks DNS labels, subdomains, host names and SANs by RFC 1123 (no "a..b")', () => {
    const table: [string, boolean, boolean, boolean, boolean][] = [
      // text, label, subdomain, host name, SAN
      ['node-1', true, true, true, true],
      ['a.b.example', false, true, true, true],
      ['a..b', false, false, false, false],
      ['.a', false, false, false, false],
      ['a.', false, false, false, false],
      ['Upper', false, false, false, false],
      ['-a', false, false, false, false],
      ['a'.repeat(63), true, true, true, true],
      ['a'.repeat(64), false, false, false, false],
      [`${'a.'.repeat(126)}a`, false, true, true, true],
      [`${'a.'.repeat(127)}a`, false, false, false, false],
      ['10.0.0.300', false, true, false, false],
      ['123', true, true, false, false],
      ['*.apps.example', false, false, false, true],
      ['*.*.example', false, false, false, false],
      ['10.0.0.1', false, true, false, true],
      ['fd00::1', false, false, false, true],
    ];
    for (const [s, label, sub, host, san] of table) {
      assert.deepEqual(
        [isDnsLabel(s), isDnsSubdomain(s), isHostName(s), isSan(s)],
        [label, sub, host, san],
        s,
      );
    }
    assert.equal(isIp('1.2.3.4'), true);
    assert.equal(isIp('01.2.3.4'), false);
    assert.equal(isPort(1), true);
    assert.equal(isPort(65536), false);
    assert.equal(isPort(1.5), false);
    assert.equal(isPort('80'), false);
  });
});
