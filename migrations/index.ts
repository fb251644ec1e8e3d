/**
 * Every migration, in order. A migration is never edited after it ships:
 * add a new one instead.
 */
import type { Knex } from 'knex';
import * as m001 from './20261123_001_sessions.js';
import * as m002 from './20261123_002_images.js';
import * as m003 from './20261123_003_checks.js';
import * as m004 from './20261123_004_systems.js';
import * as m005 from './20261123_005_check_jobs.js';
import * as m006 from './20261123_006_deployment.js';
import * as m007 from './20261201_007_engine_images.js';
import * as m008 from './20261201_008_reuse_scope.js';
import * as m009 from './20261202_009_sharing.js';
import * as m010 from './20261202_010_builds.js';
import * as m011 from './20261206_011_build_files.js';
import * as m013 from './20261206_013_publication_digest.js';
import * as m014 from './20261206_014_replicas.js';
import * as m015 from './20261206_015_build_inputs.js';
import * as m016 from './20261206_016_inventories.js';
import * as m017 from './20261206_017_revisions.js';
import * as m018 from './20261206_018_storage.js';
import * as m019 from './20261206_019_descriptions.js';
import * as m020 from './20261206_020_build_repository.js';
import * as m021 from './20261206_021_repositories.js';
import * as m022 from './20261206_022_link_launches.js';

export interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
  /** `{ transaction: false }` for a migration that opens its own (migrations/tableCopy.ts). */
  config?: { transaction?: boolean };
}

export const migrations: Migration[] = [
  { name: '20261123_001_sessions', ...m001 },
  { name: '20261123_002_images', ...m002 },
  { name: '20261123_003_checks', ...m003 },
  { name: '20261123_004_systems', ...m004 },
  { name: '20261123_005_check_jobs', ...m005 },
  { name: '20261123_006_deployment', ...m006 },
  { name: '20261201_007_engine_images', ...m007 },
  { name: '20261201_008_reuse_scope', ...m008 },
  { name: '20261202_009_sharing', ...m009 },
  { name: '20261202_010_builds', ...m010 },
  { name: '20261206_011_build_files', ...m011 },
  { name: '20261206_013_publication_digest', ...m013 },
  { name: '20261206_014_replicas', ...m014 },
  { name: '20261206_015_build_inputs', ...m015 },
  { name: '20261206_016_inventories', ...m016 },
  { name: '20261206_017_revisions', ...m017 },
  { name: '20261206_018_storage', ...m018 },
  { name: '20261206_019_descriptions', ...m019 },
  { name: '20261206_020_build_repository', ...m020 },
  { name: '20261206_021_repositories', ...m021 },
  { name: '20261206_022_link_launches', ...m022 },
];
