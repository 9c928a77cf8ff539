import assert from 'node:assert/strict';
import { test } from 'node:test';
import { elfInterpreter, isElf, moduleInfo } from '../../../src/guest/elf.js';
import { syntheticElf } from './fixtures.js';

test('PT_INTERP is read from the program headers; none means static', () => {
  assert.equal(elfInterpreter(syntheticElf({ interp: '/lib64/ld-linux-x86-64.so.2' })), '/lib64/ld-linux-x86-64.so.2');
  assert.equal(elfInterpreter(syntheticElf({})), undefined);
});

test('.modinfo fields come back as key/value pairs', () => {
  const ko = syntheticElf({ modinfo: ['alias=fs-9p', 'depends=9pnet,netfs', 'alias=9p'] });
  assert.deepEqual(moduleInfo(ko), [
    ['alias', 'fs-9p'],
    ['depends', '9pnet,netfs'],
    ['alias', '9p'],
  ]);
});

test('a file that is not ELF is recognised as such', () => {
  assert.equal(isElf(Buffer.from('#!/bin/sh\necho not elf\n'.padEnd(64))), false);
  assert.throws(() => elfInterpreter(Buffer.alloc(64)), /not an ELF/);
});
