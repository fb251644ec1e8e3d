// @ts-check
/* global module */
/**
 * The layers of server/, bottom to top (README, "Layout"): a module imports
 * from its own folder and from folders below it, never from one above, and
 * no import cycle exists at all. `npm run lint` runs it (depcruise).
 */

/** server/ folders, bottom to top. */
const LAYERS = [
  'io', // bytes kept in bounds: a bounded output, a tar in memory
  'secrets', // the keyring
  'store', // the database, its migrations runner and row helpers
  'audit', // the audit trail
  'hub', // JupyterHub: identity, tokens, OAuth, access rules
  'registry', // the OCI distribution client
  'jobs', // the job lifecycle
  'systems', // systems and their rules: mount paths, push paths, run-as
  'inspect', // an image's filesystem read from its layers
  'images', // a researcher's images and their status
  'builds', // building images (the builder is an interface here)
  'runner', // the Docker engine: run check, pulls, the builder, volumes
  'pulls', // images kept in the engine
  'checks', // check jobs
  'sharing', // shares and publications
  'launch', // launch parameters
  'storage', // quotas, the clean-up of built manifests and of data volumes nobody owns
  'links', // launch links: a repository opened in the visitor's server, built first if need be
  'web', // routes and presenters
];

/** Pure modules of an upper folder that every layer may import: they import nothing of the server. */
const BOTTOM_MODULES = ['^server/checks/status\\.ts$'];

/** Files at the top of server/ that every layer may import: they import none of the folders. */
const HELPERS = '^server/(errors|format|forms|log|paths)\\.ts$';

/** @type {import('dependency-cruiser').IForbiddenRuleType[]} */
const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer}`,
  comment: `server/${layer}/ lies below ${LAYERS.slice(i + 1).join(', ')}: it imports none of them`,
  severity: 'error',
  from: { path: `^server/${layer}/` },
  to: { path: `^server/(${LAYERS.slice(i + 1).join('|')})/`, pathNot: BOTTOM_MODULES },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import cycle: one of its modules belongs below the others',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'helpers-import-no-folder',
      comment: 'The helpers at the top of server/ are below every folder',
      severity: 'error',
      from: { path: HELPERS },
      to: { path: '^server/[a-z]+/' },
    },
    {
      name: 'bottom-modules-stay-pure',
      comment: 'A module every layer may import imports nothing of the server but the helpers',
      severity: 'error',
      from: { path: BOTTOM_MODULES },
      to: { path: '^server/', pathNot: HELPERS },
    },
    {
      name: 'composition-root-on-top',
      comment: 'Only the composition root (app.ts, main.ts, cli.ts) reads the configuration or builds the app',
      severity: 'error',
      from: { path: '^server/[a-z]+/' },
      to: { path: '^server/(app|main|cli|config)\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a cycle of types is a cycle of concepts.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
