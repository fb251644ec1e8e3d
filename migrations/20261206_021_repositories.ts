/**
 * One build per commit (issue #24): a repository build asks whether its
 * owner has built the same commit already, by the commit the build checked
 * out. Indexed by owner and commit, so that the question costs one lookup
 * however many builds there are.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('builds', (table) => {
    table.index(['owner', 'git_commit'], 'builds_owner_git_commit');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('builds', (table) => {
    table.dropIndex(['owner', 'git_commit'], 'builds_owner_git_commit');
  });
}
