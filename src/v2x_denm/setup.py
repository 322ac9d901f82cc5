from setuptools import find_packages, setup

package_name = 'v2x_denm'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='V2X Alerts Maintainers',
    maintainer_email='maintainers@v2x-alerts.dev',
    description='Our alerts as ETSI DENM over BTP-B / GeoNetworking: codec, CLI, gateway node.',
    license='AGPL-3.0-only',
    entry_points={
        'console_scripts': [
            'v2x_denm = v2x_denm.cli:main',
            'denm_gateway = v2x_denm.denm_gateway:main',
        ],
    },
)
