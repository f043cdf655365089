"""Progress and summaries of operations in their records; per-resource status of
checkpoints.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 14:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('checkpoints') as batch:
        batch.add_column(sa.Column('progress', sa.Text(), nullable=True))
        batch.add_column(sa.Column('resources_status', sa.Text(), nullable=True))
        batch.add_column(sa.Column('resources_reason', sa.Text(), nullable=True))
    for table in ('restores', 'verifications'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('progress', sa.Text(), nullable=True))


def downgrade() -> None:
    for table in ('restores', 'verifications'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('progress')
    with op.batch_alter_table('checkpoints') as batch:
        batch.drop_column('resources_reason')
        batch.drop_column('resources_status')
        batch.drop_column('progress')
