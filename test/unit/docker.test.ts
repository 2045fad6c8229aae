/** Docker command builders: argument lists, one word per argument. */
import { describe, expect, it } from 'vitest';
import { dockerBuild, imageId, imageLabels } from '../../lib/commands/docker.ts';

describe('docker builders', () => {
  it('builds with the Dockerfile, tag, build arguments and labels, each its own word', () => {
    expect(
      dockerBuild({ tag: 'hello:1.2.0', dockerfile: '/app dir/Dockerfile', context: '/app dir', buildArgs: ['BASE=node:20-slim', "NOTE=it's $(x)"], labels: { 'skiff.version': '1.2.0' } }),
    ).toEqual(['docker', 'build', '--file', '/app dir/Dockerfile', '--tag', 'hello:1.2.0', '--build-arg', 'BASE=node:20-slim', '--build-arg', "NOTE=it's $(x)", '--label', 'skiff.version=1.2.0', '/app dir']);
  });
  it('labels carry the version, the git sha when known, and the build time', () => {
    expect(imageLabels('1.2.0', 'abc1234', '2026-11-23T05:00:00.000Z')).toEqual({
      'org.opencontainers.image.version': '1.2.0',
      'org.opencontainers.image.revision': 'abc1234',
      'org.opencontainers.image.created': '2026-11-23T05:00:00.000Z',
      'skiff.version': '1.2.0',
    });
    expect(imageLabels('1.2.0', undefined, 't')).not.toHaveProperty('org.opencontainers.image.revision');
  });
  it('asks for an image id', () => expect(imageId('hello:1.2.0')).toEqual(['docker', 'image', 'inspect', '--format', '{{.Id}}', 'hello:1.2.0']));
});
