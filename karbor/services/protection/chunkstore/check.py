"""Whole-store check: every index, pack and manifest agrees, and (``read_data``) every
stored chunk opens and hashes to its id."""

from __future__ import annotations

from dataclasses import dataclass, field

from karbor.common import exception
from karbor.services.protection.chunkstore import blob, layout, pack
from karbor.services.protection.chunkstore.errors import CorruptionError, ManifestNotFound


@dataclass
class CheckReport:
    packs: int = 0
    chunks: int = 0
    manifests: int = 0
    orphan_packs: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check(store, read_data: bool = True) -> CheckReport:
    report = CheckReport()
    store.refresh_index()
    idx = store.index
    report.errors += [f"index file {f}: {why}" for f, why in sorted(idx.bad_files.items())]
    listed = {layout.pack_id_from_key(k) for k in store.section.list_objects(layout.PACKS)}
    listed.discard(None)
    report.packs = len(listed)
    report.chunks = len(idx)
    report.orphan_packs = len(listed - set(idx.packs))
    for pid in sorted(set(idx.packs) - listed):
        report.errors.append(f"pack {pid.hex()}: indexed but missing from the bank")
    for name in store.list_manifests():
        report.manifests += 1
        try:
            m = store.get_manifest(name)
        except ManifestNotFound:
            continue  # deleted meanwhile
        except CorruptionError as e:
            report.errors.append(e.reason)
            continue
        lost = [cid for cid in m.chunk_ids() if cid not in idx]
        if lost:
            report.errors.append(f"manifest {name}: {len(lost)} chunks in no index, "
                                 f"e.g. {lost[0].hex()}")
    if not read_data:
        return report
    for pid in sorted(set(idx.packs) & listed):
        what = f"pack {pid.hex()}"
        try:
            data = store.fetch_pack(pid)
        except (exception.BankObjectNotFound, CorruptionError) as e:
            report.errors.append(f"{what}: {e}")
            continue
        if pack.pack_id_of(data) != pid:
            report.errors.append(f"{what}: content does not hash to its name")
        try:
            header = pack.parse(store.sealer, data, what)
        except CorruptionError as e:
            report.errors.append(e.reason)
            header = None
        if header is not None and sorted(header) != sorted(idx.packs[pid]):
            report.errors.append(f"{what}: its header and the index disagree")
        for e in idx.packs[pid]:
            try:
                blob.decode_chunk(store.sealer, e.chunk_id, e.raw_length,
                                  memoryview(data)[e.offset:e.offset + e.length])
            except CorruptionError as err:
                report.errors.append(f"{err.reason} (pack {pid.hex()})")
    return report
