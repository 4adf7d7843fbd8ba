"""The template families: one module per family of templates, each holding, for its
templates, everything that defines them: validated parameters, contract builder, port
layouts, behavioural model (simulator), Amaranth component (HDL), resource model
(estimator) and the :class:`~attnflow.mappers.catalog.TemplateDef` (with the latency)
that ties them together. The registry, ``mappers.catalog``, lists the family modules
(``FAMILIES``) and finds every template there.
"""
