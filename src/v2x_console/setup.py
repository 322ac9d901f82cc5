from glob import glob

from setuptools import find_packages, setup

package_name = 'v2x_console'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    # The page's files (HTML, JS, CSS) ship inside the Python package: found at run time
    # next to the module, whether installed or symlinked (colcon --symlink-install).
    package_data={package_name: ['static/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/static', glob('v2x_console/static/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='V2X Alerts Maintainers',
    maintainer_email='maintainers@v2x-alerts.dev',
    description='v2x_console: a web console for RSU and vehicle operators.',
    license='AGPL-3.0-only',
    entry_points={
        'console_scripts': [
            'v2x_console = v2x_console.v2x_console:main',
        ],
    },
)
