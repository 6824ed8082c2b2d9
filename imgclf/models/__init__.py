"""imgclf.models: the registry, the model modules that fill it, and the classifier around a
backbone.

Importing this package imports every model module, so each ``@register_model`` runs (timm's way);
:mod:`imgclf.models.registry` imports none of them. To add a model, write ``models/<name>.py`` with
a ``@register_model`` builder and add its import line below.
"""

from imgclf.models import backbones, cnn, lite, tiny_cnn  # noqa: F401  (registration happens on import)
