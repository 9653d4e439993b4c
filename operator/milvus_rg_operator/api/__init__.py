"""The milvusrg.io/v1alpha1 API: pydantic models (models.py), the CRDs rendered from them (crds.py) and
the API reference (reference.py)."""
