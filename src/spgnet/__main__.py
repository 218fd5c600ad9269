from spgnet.cli import main

raise SystemExit(main())
