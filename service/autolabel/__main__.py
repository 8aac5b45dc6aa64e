from autolabel.cli import main

raise SystemExit(main())
