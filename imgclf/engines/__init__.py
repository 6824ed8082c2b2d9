"""imgclf.engines: how a run's model is run — the one home of prediction engines.

``base.py`` the :class:`~imgclf.engines.base.Engine` interface and what an engine needs from a run
(:class:`~imgclf.engines.base.TrainedRun`); ``keras_engine.py`` the Keras model as an engine (and
the model without its training-only layers); ``tflite_engine.py`` a ``.tflite`` file as an engine
and the TFLite converter; ``parity.py`` the check every non-Keras engine passes against Keras on the
run's held-out images; ``choose.py`` which engine ``predict``/``serve`` use and the cached TFLite
copy. ``preprocess.py`` is copied into every export folder: imgclf's decoding without imgclf.

Below ``evaluation/`` (the prediction core runs an engine) and ``serving/`` (``export`` writes
models with these converters and checks them with this parity check).
"""
