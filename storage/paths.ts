// CNCF distribution's v2 storage layout, so either registry can serve a store
// the other wrote. Our own derived indexes (referrers) live under names that
// start with '_' which distribution's catalog walk skips.
import type { Digest } from './digest';

const ROOT = '/docker/registry/v2';

const blobDir = (d: Digest) => `${ROOT}/blobs/${d.algorithm}/${d.hex.slice(0, 2)}/${d.hex}`;
const repo = (name: string) => `${ROOT}/repositories/${name}`;

export const paths = {
  root: ROOT,
  blobsRoot: `${ROOT}/blobs`,
  repositoriesRoot: `${ROOT}/repositories`,
  blobData: (d: Digest) => `${blobDir(d)}/data`,
  blobDir,
  repository: repo,
  layerLink: (name: string, d: Digest) => `${repo(name)}/_layers/${d.algorithm}/${d.hex}/link`,
  layerLinkDir: (name: string, d: Digest) => `${repo(name)}/_layers/${d.algorithm}/${d.hex}`,
  layersRoot: (name: string) => `${repo(name)}/_layers`,
  manifestsRoot: (name: string) => `${repo(name)}/_manifests`,
  revisionLink: (name: string, d: Digest) => `${repo(name)}/_manifests/revisions/${d.algorithm}/${d.hex}/link`,
  revisionDir: (name: string, d: Digest) => `${repo(name)}/_manifests/revisions/${d.algorithm}/${d.hex}`,
  revisionsRoot: (name: string) => `${repo(name)}/_manifests/revisions`,
  tagsRoot: (name: string) => `${repo(name)}/_manifests/tags`,
  tagDir: (name: string, tag: string) => `${repo(name)}/_manifests/tags/${tag}`,
  tagCurrentLink: (name: string, tag: string) => `${repo(name)}/_manifests/tags/${tag}/current/link`,
  tagIndexLink: (name: string, tag: string, d: Digest) =>
    `${repo(name)}/_manifests/tags/${tag}/index/${d.algorithm}/${d.hex}/link`,
  uploadsRoot: (name: string) => `${repo(name)}/_uploads`,
  uploadDir: (name: string, id: string) => `${repo(name)}/_uploads/${id}`,
  uploadData: (name: string, id: string) => `${repo(name)}/_uploads/${id}/data`,
  uploadStartedAt: (name: string, id: string) => `${repo(name)}/_uploads/${id}/startedat`,
  referrersDir: (name: string, subject: Digest) =>
    `${repo(name)}/_referrers/${subject.algorithm}/${subject.hex}`,
  referrerLink: (name: string, subject: Digest, d: Digest) =>
    `${repo(name)}/_referrers/${subject.algorithm}/${subject.hex}/${d.algorithm}/${d.hex}/link`,
};
