import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockBody, removeBlock, upsertBlock } from '../../../src/nix/blocks.js';

const originals = ['', 'a = 1\n', 'a = 1', 'Host x\n  Port 1\n\n', '# only a comment'];

test('install then uninstall restores every file byte for byte, first or last', () => {
  for (const original of originals) {
    for (const where of ['first', 'last'] as const) {
      const edit = upsertBlock(original, 'default', 'builders = @/m\n', where);
      assert.equal(blockBody(edit.text, 'default'), 'builders = @/m\n');
      assert.equal(removeBlock(edit.text, 'default', edit.addedNewline), original, JSON.stringify({ original, where }));
    }
  }
});

test('installing twice is installing once; a changed body replaces the block in place', () => {
  const once = upsertBlock('x = 1\n', 'default', 'a\n', 'last');
  const twice = upsertBlock(once.text, 'default', 'a\n', 'last');
  assert.equal(twice.text, once.text);
  const changed = upsertBlock(`${once.text}y = 2\n`, 'default', 'b\n', 'last');
  assert.equal(changed.text, once.text.replace('a\n', 'b\n') + 'y = 2\n');
});

test('blocks of different instances are independent', () => {
  const a = upsertBlock('', 'a', 'A\n', 'last').text;
  const ab = upsertBlock(a, 'b', 'B\n', 'last').text;
  assert.equal(blockBody(ab, 'a'), 'A\n');
  assert.equal(blockBody(ab, 'b'), 'B\n');
  assert.equal(removeBlock(ab, 'a'), upsertBlock('', 'b', 'B\n', 'last').text);
});

test('text that only mentions a marker is not a block', () => {
  const text = 'note: # BEGIN linux-builder default is not at a line start\n';
  assert.equal(removeBlock(text, 'default'), text);
});
