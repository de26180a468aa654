// package.json's `engines` tells the truth: every installed package supports
// the oldest Node it promises, and the Node running the suite, so `npm ci`
// prints no EBADENGINE warning.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../src/db/migrate.js';

const semver = createRequire(import.meta.url)('semver') as {
  minVersion(range: string): { version: string } | null;
  satisfies(version: string, range: string): boolean;
};

const read = (file: string) => JSON.parse(readFileSync(path.join(projectRoot, file), 'utf8'));

describe('engines', () => {
  const promised: string = read('package.json').engines.node;
  const oldest = semver.minVersion(promised)!.version;
  const packages = Object.entries(read('package-lock.json').packages as Record<string, { version?: string; engines?: { node?: string } }>)
    .filter(([name, entry]) => name && typeof entry.engines?.node === 'string')
    .map(([name, entry]) => [name.replace(/^.*node_modules\//, ''), entry.version, entry.engines!.node!] as const);

  it('the lock file has packages with engine ranges to check', () => {
    expect(packages.length).toBeGreaterThan(10);
  });

  it(`every locked package supports Node ${oldest}, the oldest that package.json promises`, () => {
    const unsupported = packages.filter(([, , range]) => !semver.satisfies(oldest, range));
    expect(unsupported.map(([name, version, range]) => `${name}@${version} wants node ${range}`)).toEqual([]);
  });

  it(`every locked package supports the Node running the suite (${process.version})`, () => {
    expect(semver.satisfies(process.version, promised)).toBe(true);
    const unsupported = packages.filter(([, , range]) => !semver.satisfies(process.version, range));
    expect(unsupported.map(([name, version, range]) => `${name}@${version} wants node ${range}`)).toEqual([]);
  });
});
