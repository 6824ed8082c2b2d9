"""The sub-commands of ``imgclf`` (front end, like :mod:`imgclf.cli`): each module adds its
parser(s) to the command line and runs its command; ``predict``, ``export`` and ``serve`` live in
:mod:`imgclf.serving.commands`."""
