/**
 * One build's layers, as the engine knows them (never from the build's
 * output, which a RUN step can print anything into): the images the build
 * committed are those that were not in the engine when it started, carry no
 * tag or digest, and carry the build's layer label or descend from an image
 * that does (builds/layerLabel.ts puts the label after each FROM, so every
 * layer of the build descends from one: a LABEL of the researcher's own
 * with the same key cannot take a layer out of the count). Only one build of
 * an image runs at a time (builds/store.ts), so no other build of it
 * commits layers under the same label meanwhile. A build that someone else
 * runs FROM this image at the same time (it was shared with them) descends
 * from it too: its newest layer, if childless and unused, goes with this
 * build's clean-up, and its writes count to this build's disk.
 */
import { LAYER_LABEL } from '../builds/layerLabel.js';
import { engineError, type DockerEngine } from './engine.js';

interface ImageSummary {
  Id: string;
  ParentId: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  Labels?: Record<string, string> | null;
  Size: number;
}

/** An image this build committed: its id, and the bytes its own layer adds to its parent. */
export interface BuildLayer {
  id: string;
  bytes: number;
}

const untagged = (image: ImageSummary) =>
  (image.RepoTags ?? []).every((t) => t === '<none>:<none>') && (image.RepoDigests ?? []).every((d) => d === '<none>@<none>');

export class BuildLayers {
  private constructor(
    private readonly engine: DockerEngine,
    private readonly marker: string,
    /** Every image id in the engine when the build started. */
    private readonly before: ReadonlySet<string>,
  ) {}

  /** Every image id the engine holds now: taken before a build starts, for {@link BuildLayers.of}. */
  static async snapshot(engine: DockerEngine): Promise<ReadonlySet<string>> {
    return new Set((await list(engine)).map((i) => i.Id));
  }

  /** The layers of the build whose layers carry `marker`, begun after `before` was taken. */
  static of(engine: DockerEngine, marker: string, before: ReadonlySet<string>): BuildLayers {
    return new BuildLayers(engine, marker, before);
  }

  /** The images this build committed so far and that have no name (what a clean-up may remove), children before their parents. */
  async created(images?: ImageMap): Promise<BuildLayer[]> {
    return (await this.committed(images)).filter((l) => l.untagged).map(({ id, bytes }) => ({ id, bytes }));
  }

  /** The images this build committed so far, its tagged result included, children before their parents. */
  private async committed(listed?: ImageMap): Promise<Array<BuildLayer & { untagged: boolean }>> {
    const images = listed ?? (await imageMap(this.engine));
    const ours = new Map<string, boolean>();
    const isOurs = (image: ImageSummary): boolean => {
      const chain: ImageSummary[] = [];
      let found = false;
      for (let at: ImageSummary | undefined = image; at; at = images.get(at.ParentId)) {
        const known = ours.get(at.Id);
        if (known !== undefined) {
          found = known;
          break;
        }
        chain.push(at);
        if (at.Labels?.[LAYER_LABEL] === this.marker) {
          found = true;
          break;
        }
      }
      for (const link of chain) ours.set(link.Id, found);
      return found;
    };
    const depth = new Map<string, number>();
    const layers: Array<BuildLayer & { untagged: boolean; depth: number }> = [];
    for (const image of images.values()) {
      if (this.before.has(image.Id) || !isOurs(image)) continue;
      const parent = images.get(image.ParentId);
      layers.push({
        id: image.Id,
        bytes: Math.max(0, image.Size - (parent?.Size ?? 0)),
        untagged: untagged(image),
        depth: depthOf(image, images, depth),
      });
    }
    return layers.sort((a, b) => b.depth - a.depth).map(({ id, bytes, untagged }) => ({ id, bytes, untagged }));
  }

  /**
   * What the build wrote to the engine's disk so far: its committed layers,
   * and the changes of its step containers (they run an image that carries
   * the label or descends from one).
   */
  async written(): Promise<number> {
    // One listing of the engine's images serves both: the layers and where they begin.
    const images = await imageMap(this.engine);
    const layers = await this.committed(images);
    const starts = this.labelStarts(images);
    let containers: Array<{ SizeRw?: number }> = [];
    if (starts.length > 0) {
      try {
        // `ancestor` matches containers of the given images and of every image descending from them.
        containers = (await this.engine.docker.listContainers({ all: true, size: true, filters: { ancestor: starts } })) as Array<{
          SizeRw?: number;
        }>;
      } catch (err) {
        throw engineError(err, "measure a build's containers");
      }
    }
    return layers.reduce((sum, l) => sum + l.bytes, 0) + containers.reduce((sum, c) => sum + (c.SizeRw ?? 0), 0);
  }

  /**
   * Removes what the build committed, newest first. Never an image by force:
   * one with a child or in use stays. A cancelled build's step may still be
   * running (the engine has not yet seen the build end) or going away,
   * holding its layer: this build's own step containers are removed by force
   * first, and what is still in use is tried again, listed anew each round (a
   * step the engine committed meanwhile goes too), until `settleMs` after the
   * clean-up began.
   */
  async remove(settleMs = 120_000): Promise<void> {
    const deadline = Date.now() + settleMs;
    for (;;) {
      // One listing serves both: removing containers changes no image.
      const images = await imageMap(this.engine);
      await this.removeOwnSteps(images);
      let inUse = false;
      for (const { id } of await this.created(images)) {
        if ((await this.engine.removeLayer(id).catch(() => 'failed')) === 'in_use') inUse = true;
      }
      if (!inUse || Date.now() > deadline) return;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * Removes, by force, the containers of this build's own steps: those that
   * run a layer committed by this build on top of its own label, that is a
   * chain of new layers down to a label start (an image with the label whose
   * parent has none). Someone else's build FROM this image at the same time
   * runs on layers that descend from this image's tagged result, which was
   * there before, carries the label and has a parent that does: never theirs.
   */
  private async removeOwnSteps(images: ImageMap): Promise<void> {
    const isLabelStart = (image: ImageSummary | undefined) => this.isLabelStart(image, images);
    const own = new Set<string>();
    for (const image of images.values()) {
      const chain: ImageSummary[] = [];
      let at: ImageSummary | undefined = image;
      while (at && !this.before.has(at.Id)) {
        chain.push(at);
        at = images.get(at.ParentId);
      }
      if (chain.length > 0 && (chain.some(isLabelStart) || isLabelStart(at))) own.add(image.Id);
    }
    if (own.size === 0) return;
    let containers: Array<{ Id: string; ImageID: string }>;
    try {
      containers = (await this.engine.docker.listContainers({ all: true })) as Array<{ Id: string; ImageID: string }>;
    } catch (err) {
      throw engineError(err, "list a build's containers");
    }
    for (const container of containers.filter((c) => own.has(c.ImageID))) {
      // Gone already, or its removal under way: both end as wanted.
      await this.engine.docker
        .getContainer(container.Id)
        .remove({ force: true })
        .catch(() => undefined);
    }
  }

  /** The images carrying the label whose parent does not: where the build's layers begin (one a stage). */
  private labelStarts(images: ImageMap): string[] {
    return [...images.values()].filter((i) => this.isLabelStart(i, images)).map((i) => i.Id);
  }

  private isLabelStart(image: ImageSummary | undefined, images: ImageMap): boolean {
    return image?.Labels?.[LAYER_LABEL] === this.marker && images.get(image.ParentId)?.Labels?.[LAYER_LABEL] !== this.marker;
  }
}

type ImageMap = Map<string, ImageSummary>;

/** Every image of the engine, by id. */
async function imageMap(engine: DockerEngine): Promise<ImageMap> {
  return new Map((await list(engine)).map((i) => [i.Id, i]));
}

async function list(engine: DockerEngine): Promise<ImageSummary[]> {
  try {
    return (await engine.docker.listImages({ all: true })) as unknown as ImageSummary[];
  } catch (err) {
    throw engineError(err, 'list its images');
  }
}

function depthOf(image: ImageSummary, images: Map<string, ImageSummary>, memo: Map<string, number>): number {
  const chain: ImageSummary[] = [];
  let at: ImageSummary | undefined = image;
  let base = 0;
  while (at) {
    const known = memo.get(at.Id);
    if (known !== undefined) {
      base = known;
      break;
    }
    chain.push(at);
    at = images.get(at.ParentId);
  }
  for (const link of chain.reverse()) memo.set(link.Id, ++base);
  return memo.get(image.Id) ?? 0;
}
