import sys

from keras_regnet.cli import main

sys.exit(main())
