"""KEMI: routing logic in Python (``cfgengine "python"``), Kamailio's app_python3 style.

:mod:`.ksr` builds the ``KSR`` object from the loaded modules' exports;
:mod:`.app_python3` is the module that loads the script and runs its routes.
"""
