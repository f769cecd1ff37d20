"""The data path: sources read as streams of tables, preparation (cleaning, splitting, statistics,
versions) and the content-addressed Parquet parts a prepared dataset is stored as.

`table` (what a source delivers) → `sources` → `dataset`; beside them the numerics the pass needs
(`moments`, `order_statistics`, `sampling`, `distribution`, `encoding`) and the shard `partials`.
May import `marina.solver`, `marina.storage`, `marina.contract` and `marina.system`.
"""
