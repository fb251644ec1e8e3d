/** A tar in memory (tar-stream): for the engine's archive and build APIs, which take small tars whole. */
import tar from 'tar-stream';

/** Packs what `add` puts into the archive, and returns the archive. */
export async function tarball(add: (pack: tar.Pack) => void): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  add(pack);
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}
