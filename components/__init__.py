def __getattr__(name: str):
    # The Kubeflow V2 entrypoint imports artifact classes by their type name (components.SearchPlan);
    # lazily, so that importing one component does not import them all.
    if name == "SearchPlan":
        from components.artifacts import SearchPlan
        return SearchPlan
    raise AttributeError(f"module 'components' has no attribute {name!r}")
