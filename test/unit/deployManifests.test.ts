/**
 * What admins deploy with, read as Kubernetes and Helm would read it: the
 * manifests in deploy/kubernetes/ and the Zero to JupyterHub values in the
 * README parse, wire the pieces to each other, and set only environment
 * variables the service reads. (No cluster runs here.)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { configVariables } from '../../server/config.js';
import { SystemInputSchema } from '../../server/systems/service.js';

const DIR = 'deploy/kubernetes';

type Doc = { kind: string; metadata: { name: string }; [key: string]: unknown };
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are free-form YAML
type Any = any;

function manifests(): Doc[] {
  const docs: Doc[] = [];
  for (const file of fs.readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    for (const doc of parseAllDocuments(fs.readFileSync(path.join(DIR, file), 'utf8'))) {
      expect(doc.errors, file).toEqual([]);
      docs.push(doc.toJS() as Doc);
    }
  }
  return docs;
}

const byKind = (kind: string): Any => {
  const found = manifests().filter((d) => d.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0];
};

/** The YAML block of the README's Zero to JupyterHub section. */
function z2jhValues(): Any {
  const readme = fs.readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## Zero to JupyterHub'));
  const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  expect(block).toBeDefined();
  return parse(block!);
}

describe('deploy/kubernetes', () => {
  it('lists every manifest in its kustomization', () => {
    const kustomization = parse(fs.readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
    const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });

  it('sets only variables the service reads, from its env and its Secret', () => {
    const known = new Set(configVariables());
    const deployment = byKind('Deployment');
    const [container] = deployment.spec.template.spec.containers;
    const set: string[] = container.env.map((e: { name: string }) => e.name);
    const secret = byKind('Secret');
    expect(container.envFrom).toEqual([{ secretRef: { name: secret.metadata.name } }]);
    set.push(...Object.keys(secret.stringData));
    expect(set.filter((name) => !known.has(name))).toEqual([]);
    // What the service cannot start without, and what several replicas must share.
    expect(set).toEqual(
      expect.arrayContaining(['JUPYTERHUB_API_URL', 'JUPYTERHUB_API_TOKEN', 'CUSTOM_IMAGES_DATABASE_URL', 'CUSTOM_IMAGES_COOKIE_SECRET']),
    );
    expect(secret.stringData.CUSTOM_IMAGES_DATABASE_URL).toMatch(/^postgres:\/\//);
  });

  it('runs two replicas, non-root on a read-only root, probed on /healthz, allowed to reach the hub', () => {
    const deployment = byKind('Deployment');
    const pod = deployment.spec.template;
    const [container] = pod.spec.containers;
    expect(deployment.spec.replicas).toBe(2);
    for (const [key, value] of Object.entries(deployment.spec.selector.matchLabels)) expect(pod.metadata.labels[key]).toBe(value);
    expect(pod.metadata.labels['hub.jupyter.org/network-access-hub']).toBe('true');
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    const env = Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    const listen = new URL(env.JUPYTERHUB_SERVICE_URL);
    expect(container.ports.find((p: { name: string }) => p.name === 'http').containerPort).toBe(Number(listen.port));
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      expect(probe.httpGet).toEqual({ path: `${env.JUPYTERHUB_SERVICE_PREFIX}healthz`, port: 'http' });
    }
    // The systems file is mounted where the variable says.
    const systemsFile = env.CUSTOM_IMAGES_SYSTEMS_FILE;
    const mount = container.volumeMounts.find((m: { mountPath: string }) => systemsFile.startsWith(`${m.mountPath}/`));
    const volume = pod.spec.volumes.find((v: { name: string }) => v.name === mount.name);
    const configMap = byKind('ConfigMap');
    expect(volume.configMap.name).toBe(configMap.metadata.name);
    const systems = JSON.parse(configMap.data[path.basename(systemsFile)]) as unknown[];
    for (const system of systems) {
      const parsed = SystemInputSchema.safeParse(system);
      expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
      expect(parsed.data?.spawner).toBe('kubernetes');
    }
  });

  it('the Service selects the pods on their http port', () => {
    const service = byKind('Service');
    const pod = byKind('Deployment').spec.template;
    for (const [key, value] of Object.entries(service.spec.selector)) expect(pod.metadata.labels[key]).toBe(value);
    expect(service.spec.ports[0].targetPort).toBe('http');
  });
});

describe("the README's Zero to JupyterHub values", () => {
  it('point the hub and the hook at the Service, with the scopes and roles the service needs', () => {
    const values = z2jhValues();
    const service = byKind('Service');
    const env = Object.fromEntries(
      byKind('Deployment').spec.template.spec.containers[0].env.map((e: { name: string; value: string }) => [e.name, e.value]),
    );
    const address = `http://${service.metadata.name}:${service.spec.ports[0].port}`;
    const entry = values.hub.services['custom-images'];
    expect(entry.url).toBe(address);
    expect(entry.oauth_client_allowed_scopes).toEqual(['custom:custom-images:admin']);
    expect(values.hub.services['custom-images-launcher'].apiToken).toBeTruthy();
    // The hub's API as the service is told to reach it is z2jh's Service "hub".
    expect(env.JUPYTERHUB_API_URL).toBe('http://hub:8081/hub/api');
    expect(values.hub.loadRoles.user.scopes).toContain('access:services!service=custom-images');
    expect(values.hub.loadRoles['custom-images-launcher']).toEqual({
      scopes: ['custom:custom-images:launch', 'read:users:name'],
      services: ['custom-images-launcher'],
    });
    // Sharing asks the hub for users' groups with the service's own token; the clean-up, which users it still has;
    // launch links start (and, when asked, stop) the visitor's server and wait until it is ready.
    expect(values.hub.loadRoles['custom-images-service']).toEqual({
      scopes: ['read:users:groups', 'list:groups', 'list:users', 'servers', 'read:servers'],
      services: ['custom-images'],
    });
    expect(Object.keys(values.hub.config.JupyterHub.custom_scopes).sort()).toEqual([
      'custom:custom-images:admin',
      'custom:custom-images:launch',
    ]);
    const extraConfig: string = values.hub.extraConfig['custom-images'];
    expect(extraConfig).toContain(`api_url="${address}${env.JUPYTERHUB_SERVICE_PREFIX}api/v1/"`);
    expect(values.hub.extraFiles['custom-images-hook'].mountPath).toMatch(/\/custom_images_hook\.py$/);
    expect(values.singleuser.profileList.length).toBeGreaterThan(0);
  });

  it('hub.extraConfig is valid Python', () => {
    const code: string = z2jhValues().hub.extraConfig['custom-images'];
    const run = spawnSync('/usr/bin/python3', ['-c', 'import sys; compile(sys.stdin.read(), "extraConfig", "exec")'], {
      input: code,
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});

describe('what the pods may reach (issue #22)', () => {
  const pod = () => byKind('Deployment').spec.template;
  const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
    Object.entries(selector).every(([key, value]) => labels[key] === value);
  /** A z2jh pod of `component` (hub, proxy, singleuser), as the chart labels it. */
  const z2jhPod = (component: string) => ({ app: 'jupyterhub', component, release: 'jhub' });
  const ports = (rule: Any) =>
    (rule.ports ?? []).map((p: { port: number | string; protocol?: string }) => `${p.port}/${p.protocol ?? 'TCP'}`);
  /** The egress rules that allow `port` (and only ports listed), with their peers. */
  const egressTo = (port: string) => byKind('NetworkPolicy').spec.egress.filter((rule: Any) => ports(rule).includes(port));

  it('carry no service account token: the pod and its own service account say so', () => {
    const spec = pod().spec;
    const account = byKind('ServiceAccount');
    expect(spec.serviceAccountName).toBe(account.metadata.name);
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(account.automountServiceAccountToken).toBe(false);
  });

  it('a NetworkPolicy selects the pods for both directions', () => {
    const policy = byKind('NetworkPolicy');
    expect(selects(policy.spec.podSelector.matchLabels, pod().metadata.labels)).toBe(true);
    expect([...policy.spec.policyTypes].sort()).toEqual(['Egress', 'Ingress']);
  });

  it('lets in only the hub and the proxy, on the service port', () => {
    const { ingress } = byKind('NetworkPolicy').spec;
    expect(ingress).toHaveLength(1);
    const [rule] = ingress;
    expect(ports(rule)).toEqual(['http/TCP']);
    const peers: Any[] = rule.from;
    for (const peer of peers) expect(Object.keys(peer)).toEqual(['podSelector']);
    const admits = (labels: Record<string, string>) => peers.some((p) => selects(p.podSelector.matchLabels, labels));
    expect(admits(z2jhPod('hub'))).toBe(true);
    expect(admits(z2jhPod('proxy'))).toBe(true);
    // Notebook servers (anything a researcher runs) and pods of other apps do not get in.
    expect(admits(z2jhPod('singleuser-server'))).toBe(false);
    expect(admits({ app: 'other' })).toBe(false);
  });

  it('lets out only the hub API, DNS, the database and https; https never to private or metadata addresses', () => {
    const { egress } = byKind('NetworkPolicy').spec;
    // Every rule names its ports: no rule opens everything.
    for (const rule of egress) expect(ports(rule).length, JSON.stringify(rule)).toBeGreaterThan(0);
    const allowed = new Set(egress.flatMap((rule: Any) => ports(rule)));
    const env = Object.fromEntries(pod().spec.containers[0].env.map((e: { name: string; value: string }) => [e.name, e.value]));
    const hubPort = new URL(env.JUPYTERHUB_API_URL).port;
    const databasePort = new URL(byKind('Secret').stringData.CUSTOM_IMAGES_DATABASE_URL).port;
    expect([...allowed].sort()).toEqual([`${hubPort}/TCP`, `${databasePort}/TCP`, '443/TCP', '53/TCP', '53/UDP'].sort());

    const [toHub] = egressTo(`${hubPort}/TCP`);
    expect(toHub.to).toHaveLength(1);
    expect(toHub.to[0].podSelector.matchLabels).toEqual({ app: 'jupyterhub', component: 'hub' });

    const [https] = egressTo('443/TCP');
    const blocks: Array<{ cidr: string; except?: string[] }> = https.to.map((peer: Any) => peer.ipBlock);
    const v4 = blocks.find((b) => b.cidr === '0.0.0.0/0');
    expect(v4?.except).toEqual(
      expect.arrayContaining(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '127.0.0.0/8', '100.64.0.0/10']),
    );
    const v6 = blocks.find((b) => b.cidr === '::/0');
    expect(v6?.except).toEqual(expect.arrayContaining(['fc00::/7', 'fe80::/10', '::1/128']));
    expect(blocks.every((b) => b.cidr === '0.0.0.0/0' || b.cidr === '::/0')).toBe(true);

    // The cloud metadata address is reachable on no port.
    for (const rule of egress) {
      for (const peer of rule.to ?? []) {
        const block = peer.ipBlock as { cidr: string; except?: string[] } | undefined;
        if (block && (block.cidr === '0.0.0.0/0' || block.cidr === '169.254.0.0/16')) {
          expect(block.except ?? [], JSON.stringify(rule)).toEqual(expect.arrayContaining([expect.stringMatching(/^169\.254\./)]));
        }
      }
    }
  });
});
